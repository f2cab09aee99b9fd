"""FHIR JSON in and out, keeping the precision of decimals (json.html#primitive: `1.50` stays `1.50`).

orjson reads numbers as floats, which drops trailing zeros; the standard library can read them as Decimal.
Bodies are checked for numbers whose text a float would change, and only those take the slower path.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import orjson

# A fraction ending in 0 (1.50), an exponent (1E-22), or more significant digits (16+) than a double keeps.
_PRECISE = re.compile(rb"\d\.\d*0(?!\d)|\d[eE][+-]?\d|(?:\d\.?){16,}")


def loads(data: bytes | str) -> object:
    """Parse JSON; decimals whose text a float would not reproduce are kept as Decimal."""
    raw = data.encode() if isinstance(data, str) else data
    if _PRECISE.search(raw):
        try:
            return json.loads(raw, parse_float=Decimal, parse_int=_integer)
        except RecursionError:  # orjson refuses such input too (beyond 1,024 levels), as a decode error
            raise NestedTooDeeply("JSON nested too deeply") from None
    return orjson.loads(raw)


def _integer(text: str) -> int | Decimal:
    # orjson writes integers up to 64 bits; larger ones (never valid FHIR integers) pass through as text
    return int(text) if len(text) < 19 else Decimal(text)


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: object) -> str:
    return orjson.dumps(value, default=_default).decode()


class NestedTooDeeply(ValueError):
    """JSON nested deeper than a parser can follow."""


JSONDecodeError = (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError, NestedTooDeeply)
