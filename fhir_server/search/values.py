"""Search values by parameter type (search.html#ptypes): text -> typed value, or ValueError saying why."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from fhir_server.search.dates import DateRange, parse_range

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@dataclass(frozen=True)
class StringValue:
    text: str


@dataclass(frozen=True)
class TokenValue:
    """`[system]|[code]`, `|code` (no system), `system|` (any code) or `code` (any system)."""

    system: str | None
    code: str | None
    system_given: bool


@dataclass(frozen=True)
class DateValue:
    prefix: str
    range: DateRange


@dataclass(frozen=True)
class NumberValue:
    """A prefixed number with the implicit range its precision gives (search.html#number)."""

    prefix: str
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class QuantityValue:
    number: NumberValue
    system: str | None
    code: str | None


@dataclass(frozen=True)
class ReferenceValue:
    """A local `Type/id` (type may be None for a bare id) or, for anything else, its URL."""

    target_type: str | None
    id: str | None
    url: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class UriValue:
    uri: str


@dataclass(frozen=True)
class CompositeValue:
    first: TokenValue
    second: object


def split_unescaped(value: str, separator: str) -> list[str]:
    """Split on a separator not escaped with a backslash, keeping other escapes (search.html#escaping)."""
    parts, current, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            current.append(value[i:i + 2])
            i += 2
            continue
        if ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(value: str) -> str:
    return re.sub(r"\\([\\,$|])", r"\1", value)


def _prefixed(text: str) -> tuple[str, str]:
    if len(text) > 2 and text[:2] in PREFIXES and not text[:2].isdigit():
        return text[:2], text[2:]
    if text[:2].isalpha():
        raise ValueError(f"unknown prefix {text[:2]!r}; the prefixes are {', '.join(PREFIXES)}")
    return "eq", text


def parse_string(text: str) -> StringValue:
    return StringValue(unescape(text))


def parse_token(text: str) -> TokenValue:
    parts = split_unescaped(text, "|")
    if len(parts) == 1:
        return TokenValue(None, unescape(text) or None, False)
    system, code = parts[0], "|".join(parts[1:])
    return TokenValue(unescape(system) or None, unescape(code) or None, True)


def parse_date(text: str) -> DateValue:
    prefix, raw = _prefixed(text)
    return DateValue(prefix, parse_range(raw))


def parse_number(text: str) -> NumberValue:
    prefix, raw = _prefixed(text)
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"not a number: {raw!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a number: {raw!r}")
    # Half a unit of the last significant digit either side: 100 -> [99.5, 100.5), 1.50 -> [1.495, 1.505).
    # Stored values are doubles: the range is widened to hold at least the double nearest the value.
    half = Decimal(5).scaleb(number.as_tuple().exponent - 1)
    value = float(number)
    low = min(float(number - half), math.nextafter(value, -math.inf))
    high = max(float(number + half), math.nextafter(value, math.inf))
    return NumberValue(prefix, value, low, high)


def parse_quantity(text: str) -> QuantityValue:
    parts = split_unescaped(text, "|")
    if len(parts) not in (1, 3):
        raise ValueError(f"a quantity is number|system|code or number, not {text!r}")
    number = parse_number(parts[0])
    if len(parts) == 1:
        return QuantityValue(number, None, None)
    return QuantityValue(number, unescape(parts[1]) or None, unescape(parts[2]) or None)


def parse_reference(text: str, base_url: str, type_modifier: str | None = None) -> ReferenceValue:
    """`Type/id`, `id`, or a URL; a URL under this server's base is read as the relative reference."""
    text = unescape(text)
    if base_url and text.startswith(base_url + "/"):
        text = text[len(base_url) + 1:]
    if "://" in text or text.startswith("urn:"):
        url, _, version = text.partition("|")
        return ReferenceValue(None, None, url, version or None)
    parts = text.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) == 1:
        return ReferenceValue(type_modifier, parts[0])
    if len(parts) == 2 and parts[0][:1].isupper():
        if type_modifier and type_modifier != parts[0]:
            raise ValueError(f"the modifier :{type_modifier} contradicts the value {text!r}")
        return ReferenceValue(parts[0], parts[1])
    raise ValueError(f"not a reference: {text!r}; use Type/id, an id, or an absolute URL")


def parse_uri(text: str) -> UriValue:
    return UriValue(unescape(text))
