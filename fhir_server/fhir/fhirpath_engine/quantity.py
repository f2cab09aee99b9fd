"""System.Quantity (fhirpath.html#quantity) and the slice of UCUM (unitsofmeasure.org) it needs.

UCUM units are reduced to a magnitude in base units (m, g, s, K, rad, cd, C, mol) and a dimension vector, so
that `4.0 'g' = 4000.0 'mg'` and `2.0 'cm' * 2.0 'm' = 0.040 'm2'`. Calendar durations (`1 year`) are
FHIRPath's own: from week down they equal their UCUM units; year and month are not comparable with 'a'/'mo'
(fhirpath.html#quantity-equality). Units this table does not know compare only with the identical unit.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import cache

CALENDAR_UNITS = frozenset({
    "year", "years", "month", "months", "week", "weeks", "day", "days", "hour", "hours",
    "minute", "minutes", "second", "seconds", "millisecond", "milliseconds",
})
_CALENDAR_UCUM = {"week": "wk", "day": "d", "hour": "h", "minute": "min", "second": "s", "millisecond": "ms"}
UCUM = "http://unitsofmeasure.org"

Dimensions = tuple[tuple[str, int], ...]
Canonical = tuple[Decimal, Dimensions]

_PREFIXES = {
    "Y": "1e24", "Z": "1e21", "E": "1e18", "P": "1e15", "T": "1e12", "G": "1e9", "M": "1e6", "k": "1e3",
    "h": "1e2", "da": "1e1", "d": "1e-1", "c": "1e-2", "m": "1e-3", "u": "1e-6", "n": "1e-9", "p": "1e-12",
    "f": "1e-15", "a": "1e-18", "z": "1e-21", "y": "1e-24",
}
# symbol -> (metric, factor to base units, dimensions); the metric ones take prefixes.
_MASS_LENGTH_TIME = {"g": 1, "m": -1, "s": -2}  # pressure: g.m-1.s-2
_UNITS: dict[str, tuple[bool, str, dict[str, int]]] = {
    "m": (True, "1", {"m": 1}), "g": (True, "1", {"g": 1}), "s": (True, "1", {"s": 1}),
    "K": (True, "1", {"K": 1}), "rad": (True, "1", {"rad": 1}), "cd": (True, "1", {"cd": 1}),
    "C": (True, "1", {"C": 1}), "mol": (True, "1", {"mol": 1}),
    "L": (True, "0.001", {"m": 3}), "l": (True, "0.001", {"m": 3}),
    "Pa": (True, "1000", _MASS_LENGTH_TIME), "bar": (True, "1e8", _MASS_LENGTH_TIME),
    "m[Hg]": (True, "133322387.415", _MASS_LENGTH_TIME),
    "N": (True, "1000", {"g": 1, "m": 1, "s": -2}), "J": (True, "1000", {"g": 1, "m": 2, "s": -2}),
    "cal": (True, "4184", {"g": 1, "m": 2, "s": -2}), "W": (True, "1000", {"g": 1, "m": 2, "s": -3}),
    "Hz": (True, "1", {"s": -1}), "A": (True, "1", {"C": 1, "s": -1}), "kat": (True, "1", {"mol": 1, "s": -1}),
    "eq": (True, "1", {"mol": 1}), "osm": (True, "1", {"mol": 1}),
    "U": (True, "1.666666666666666666666666667e-8", {"mol": 1, "s": -1}),
    "[iU]": (True, "1", {"[iU]": 1}), "[IU]": (True, "1", {"[iU]": 1}),
    "Cel": (False, "1", {"Cel": 1}), "[degF]": (False, "1", {"[degF]": 1}),  # not linear: same unit only
    "min": (False, "60", {"s": 1}), "h": (False, "3600", {"s": 1}), "d": (False, "86400", {"s": 1}),
    "wk": (False, "604800", {"s": 1}), "mo": (False, "2629800", {"s": 1}), "a": (False, "31557600", {"s": 1}),
    "[in_i]": (False, "0.0254", {"m": 1}), "[ft_i]": (False, "0.3048", {"m": 1}),
    "[yd_i]": (False, "0.9144", {"m": 1}), "[mi_i]": (False, "1609.344", {"m": 1}),
    "[lb_av]": (False, "453.59237", {"g": 1}), "[oz_av]": (False, "28.349523125", {"g": 1}),
    "[gr]": (False, "0.06479891", {"g": 1}), "[drp]": (False, "5e-8", {"m": 3}),
    "deg": (False, "0.01745329251994329576923690768", {"rad": 1}),
    "%": (False, "0.01", {}), "[ppm]": (False, "1e-6", {}), "[ppb]": (False, "1e-9", {}),
    "10*": (False, "10", {}), "10^": (False, "10", {}),
}
_COMPONENT = re.compile(r"(.*?)([+-]?\d+)?")


class Quantity:
    """A value with a unit: a UCUM code, or a calendar duration keyword when `calendar` is set."""

    __slots__ = ("value", "unit", "calendar")

    def __init__(self, value: Decimal, unit: str = "1", calendar: bool = False) -> None:
        self.value = value
        self.unit = unit
        self.calendar = calendar or unit in CALENDAR_UNITS

    def __str__(self) -> str:
        return f"{self.value} {self.unit}" if self.calendar else f"{self.value} '{self.unit}'"

    def __repr__(self) -> str:
        return str(self)

    def canonical(self) -> Canonical | None:
        """The value in base units and its dimensions; None for a unit this table does not know."""
        unit = self.unit
        if self.calendar:
            word = unit.removesuffix("s")
            if word in ("year", "month"):  # calendar months: comparable with each other only
                return self.value * (12 if word == "year" else 1), (("calendar month", 1),)
            unit = _CALENDAR_UCUM[word]
        parsed = parse_unit(unit)
        if parsed is None:
            return None
        factor, dimensions = parsed
        return self.value * factor, dimensions


def from_fhir(value: dict) -> Quantity | None:
    """A FHIR Quantity (or Age, Duration…) as a System.Quantity: its UCUM code, else its unit text."""
    number = value.get("value")
    if number is None or isinstance(number, bool):
        return None
    code = value.get("code")
    unit = code if code and value.get("system", UCUM) == UCUM else (value.get("unit") or code or "1")
    return Quantity(number if isinstance(number, Decimal) else Decimal(str(number)), unit)


def _same_unit(a: Quantity, b: Quantity) -> bool:
    if a.unit == b.unit:
        return True
    if a.calendar and b.calendar:
        return a.unit.removesuffix("s") == b.unit.removesuffix("s")
    return False


def _aligned(a: Quantity, b: Quantity) -> tuple[Decimal, Decimal] | None:
    """Both values in one unit, or None when the units cannot be compared."""
    if _same_unit(a, b):
        return a.value, b.value
    ca, cb = a.canonical(), b.canonical()
    if ca is None or cb is None or ca[1] != cb[1]:
        return None
    return ca[0], cb[0]


def equal(a: Quantity, b: Quantity) -> bool | None:
    aligned = _aligned(a, b)
    return None if aligned is None else aligned[0] == aligned[1]


def equivalent(a: Quantity, b: Quantity) -> bool:
    """Equal when rounded to the precision of the less precise value (fhirpath.html#equivalent)."""
    aligned = _aligned(a, b)
    if aligned is None:
        return False
    x, y = aligned
    places = min(_places(x), _places(y))
    return round(x, places) == round(y, places)


def _places(value: Decimal) -> int:
    return max(0, -int(value.as_tuple().exponent))


def compare(a: Quantity, b: Quantity) -> int | None:
    aligned = _aligned(a, b)
    if aligned is None:
        return None
    x, y = aligned
    return (x > y) - (x < y)


def comparable(a: Quantity, b: Quantity) -> bool:
    return _aligned(a, b) is not None


def add(a: Quantity, b: Quantity, sign: int) -> Quantity | None:
    """`a + b` or `a - b`, in a's unit (fhirpath.html#addition); None for incompatible units."""
    if _same_unit(a, b):
        return Quantity(a.value + sign * b.value, a.unit, a.calendar)
    unit, cb = Quantity(Decimal(1), a.unit, a.calendar).canonical(), b.canonical()
    if unit is None or cb is None or unit[1] != cb[1]:
        return None
    return Quantity(a.value + sign * cb[0] / unit[0], a.unit, a.calendar)


def multiply(a: Quantity, b: Quantity) -> Quantity:
    return Quantity(a.value * b.value, _combine(a, b, "."))


def divide(a: Quantity, b: Quantity) -> Quantity | None:
    if not b.value:
        return None
    return Quantity(a.value / b.value, _combine(a, b, "/"))


def _ucum(q: Quantity) -> str:
    if q.calendar:
        word = q.unit.removesuffix("s")
        return _CALENDAR_UCUM.get(word, "a" if word == "year" else "mo")
    return q.unit


def _combine(a: Quantity, b: Quantity, op: str) -> str:
    left, right = _ucum(a), _ucum(b)
    if right == "1":
        return left
    if left == "1" and op == ".":
        return right
    wrap = f"({right})" if any(c in right for c in "./") else right
    return f"{'' if left == '1' else left}{op}{wrap}"


@cache
def parse_unit(text: str) -> tuple[Decimal, Dimensions] | None:
    """A UCUM unit expression (ucum.html#section-Syntax-Rules) as factor and dimensions, None if unknown."""
    try:
        parsed = _Term(text).term()
    except (ValueError, InvalidOperation):
        return None
    if parsed is None:
        return None
    factor, dims = parsed
    return factor, tuple(sorted((k, v) for k, v in dims.items() if v))


class _Term:
    """Recursive descent over `term := ['/'] component (('.' | '/') component)*`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def term(self) -> tuple[Decimal, dict[str, int]] | None:
        factor, dims = Decimal(1), {}
        op = "."
        if self.text.startswith("/", self.pos):
            op, self.pos = "/", self.pos + 1
        while True:
            part = self.component()
            if part is None:
                return None
            sign = 1 if op == "." else -1
            factor = factor * part[0] if sign == 1 else factor / part[0]
            for key, power in part[1].items():
                dims[key] = dims.get(key, 0) + sign * power
            if self.pos >= len(self.text) or self.text[self.pos] == ")":
                return factor, dims
            op = self.text[self.pos]
            if op not in "./":
                return None
            self.pos += 1

    def component(self) -> tuple[Decimal, dict[str, int]] | None:
        text = self.text
        if text.startswith("(", self.pos):
            self.pos += 1
            inner = self.term()
            if inner is None or not text.startswith(")", self.pos):
                return None
            self.pos += 1
            return inner
        end = self.pos
        depth = 0
        while end < len(text) and (depth or text[end] not in "./()"):
            depth += {"[": 1, "]": -1, "{": 1, "}": -1}.get(text[end], 0)
            end += 1
        chunk, self.pos = text[self.pos:end], end
        chunk = re.sub(r"\{[^}]*\}", "", chunk)  # annotations carry no meaning
        if not chunk:
            return Decimal(1), {}
        symbol, exponent = _COMPONENT.fullmatch(chunk).groups()  # type: ignore[union-attr]
        if not symbol:
            return (Decimal(exponent), {}) if exponent and exponent.isdigit() else None
        atom = _atom(symbol)
        if atom is None:
            return None
        power = int(exponent) if exponent else 1
        return atom[0] ** power, {k: v * power for k, v in atom[1].items()}


def _atom(symbol: str) -> tuple[Decimal, dict[str, int]] | None:
    found = _UNITS.get(symbol)
    if found is not None:
        return Decimal(found[1]), found[2]
    for prefix in ("da", *_PREFIXES):
        if symbol.startswith(prefix) and len(symbol) > len(prefix):
            base = _UNITS.get(symbol[len(prefix):])
            if base is not None and base[0]:
                return Decimal(_PREFIXES[prefix]) * Decimal(base[1]), base[2]
    return None


_QUANTITY_TEXT = re.compile(r"\s*([+-]?\d+(?:\.\d+)?)\s*(?:'([^']+)'|([A-Za-z]+))?\s*")


def parse_quantity(text: str) -> Quantity | None:
    """A string as `toQuantity()` reads it (fhirpath.html#toquantity): a number, then a quoted UCUM unit or a
    calendar keyword."""
    match = _QUANTITY_TEXT.fullmatch(text)
    if match is None:
        return None
    number, quoted, word = match.groups()
    if word is not None and word not in CALENDAR_UNITS:
        return None
    return Quantity(Decimal(number), quoted or word or "1", word is not None)
