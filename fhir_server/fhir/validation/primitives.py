"""Primitive values in JSON (json.html#primitive, datatypes.html#primitive): the JSON kind each FHIR
primitive takes, its value pattern, length and range."""

from __future__ import annotations

import re
from decimal import Decimal

_INTEGERS = {"integer": (-2**31, 2**31 - 1), "positiveInt": (1, 2**31 - 1), "unsignedInt": (0, 2**31 - 1)}
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")


def kind_problem(code: str, value: object) -> str | None:
    """Why `value` is not the JSON kind a `code` primitive takes, or None."""
    if code == "boolean":
        return None if isinstance(value, bool) else "a JSON boolean (true or false)"
    if code in _INTEGERS:
        low, high = _INTEGERS[code]
        if isinstance(value, bool) or not isinstance(value, int | Decimal) or value != int(value):
            return "a JSON whole number"
        return None if low <= value <= high else f"a whole number from {low:,} to {high:,}"
    if code == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return "a JSON number"
        return None
    return None if isinstance(value, str) else "a JSON string"


def pattern_problem(code: str, value: object, regex: re.Pattern | None) -> bool:
    """Whether `value`'s text breaks its type's pattern (the regex extension on `<type>.value`)."""
    if not isinstance(value, str):
        return False  # numbers and booleans were checked by kind_problem; their JSON form is their pattern
    if code == "base64Binary":
        # The published pattern backtracks badly on long invalid input; this is the same alphabet test.
        return _BASE64.fullmatch(value) is None or len("".join(value.split())) % 4 != 0
    return regex is not None and regex.fullmatch(value) is None


def compare(value: object, limit: object) -> int | None:
    """-1, 0 or 1 comparing a value with a minValue/maxValue of the same type, None where they do not
    compare (dates of different precision)."""
    if isinstance(value, int | float | Decimal) and isinstance(limit, int | float | Decimal):
        return (value > limit) - (value < limit)
    if isinstance(value, str) and isinstance(limit, str) and len(value) == len(limit):
        return (value > limit) - (value < limit)
    return None
