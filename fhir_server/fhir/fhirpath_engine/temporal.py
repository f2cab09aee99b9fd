"""Date, DateTime and Time with partial precision (fhirpath.html#datetime, #date-time-equality,
#date-time-arithmetic, and the 2.0 `lowBoundary()`/`highBoundary()`/`precision()` functions).

A value keeps only the fields it was given: `@2014-03` has year and month. Seconds and their fraction are one
precision for comparison (`@T10:30:00 = @T10:30:00.0`), and the fraction's digits are kept for printing.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from decimal import Decimal

from .errors import FhirPathError

_DATE_TIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?")
_TIME = re.compile(r"(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?")
_LIMITS = ((1, 9999), (1, 12), (1, 31), (0, 23), (0, 59), (0, 59))
# Calendar durations and the UCUM units that may be added to a date (fhirpath.html#date-time-arithmetic):
# 'a' and 'mo' are not definite durations and are refused.
_UNIT_FIELDS = {
    "year": 0, "month": 1, "week": 2, "day": 2, "hour": 3, "minute": 4, "second": 5, "millisecond": 6,
    "wk": 2, "d": 2, "h": 3, "min": 4, "s": 5, "ms": 6,
}
_FIELD_SECONDS = (None, None, 86400, 3600, 60, 1, Decimal("0.001"))


class Temporal:
    """A partial date/time: `fields` up to its precision, the seconds' fraction digits, a timezone offset."""

    __slots__ = ("fields", "fraction", "tz")
    kind = ""
    _PRECISION_DIGITS: tuple[int, ...] = ()

    def __init__(self, fields: tuple[int, ...], fraction: str = "", tz: str | None = None) -> None:
        self.fields = fields
        self.fraction = fraction
        self.tz = tz

    def __repr__(self) -> str:
        return f"@{self}"

    _SECONDS = 5  # the index of the seconds among the fields

    def precision(self) -> int:
        """fhirpath.html#precision: digits of the value (4 for a year, 17 for a DateTime to milliseconds)."""
        digits = self._PRECISION_DIGITS[len(self.fields) - 1]
        return digits + 3 if self.fraction and len(self.fields) == self._SECONDS + 1 else digits


class Date(Temporal):
    __slots__ = ()
    kind = "Date"
    _PRECISION_DIGITS = (4, 6, 8)

    def __str__(self) -> str:
        return _date_text(self.fields)


class DateTime(Temporal):
    __slots__ = ()
    kind = "DateTime"
    _PRECISION_DIGITS = (4, 6, 8, 10, 12, 14)

    def __str__(self) -> str:
        text = _date_text(self.fields)
        if len(self.fields) > 3:
            text += "T" + _time_text(self.fields[3:], self.fraction) + (self.tz or "")
        return text

    def offset_minutes(self) -> int:
        if self.tz in (None, "Z"):
            return 0
        sign = -1 if self.tz[0] == "-" else 1
        return sign * (int(self.tz[1:3]) * 60 + int(self.tz[4:6]))

    def utc_fields(self) -> tuple[int, ...]:
        fields = self.fields + (0,) * (5 - len(self.fields)) if len(self.fields) < 5 else self.fields
        moment = datetime(*fields[:5]) - timedelta(minutes=self.offset_minutes())
        return (moment.year, moment.month, moment.day, moment.hour, moment.minute, *fields[5:])[:len(self.fields)]


class Time(Temporal):
    __slots__ = ()
    kind = "Time"
    _PRECISION_DIGITS = (2, 4, 6)
    _SECONDS = 2

    def __str__(self) -> str:
        return _time_text(self.fields, self.fraction)


def _date_text(fields: tuple[int, ...]) -> str:
    return "-".join(f"{value:04d}" if i == 0 else f"{value:02d}" for i, value in enumerate(fields[:3]))


def _time_text(fields: tuple[int, ...], fraction: str) -> str:
    return ":".join(f"{value:02d}" for value in fields) + (f".{fraction}" if fraction else "")


def _valid(fields: tuple[int, ...]) -> bool:
    for i, value in enumerate(fields):
        low, high = _LIMITS[i]
        if not low <= value <= high:
            return False
    return len(fields) < 3 or fields[2] <= calendar.monthrange(fields[0], fields[1])[1]


def parse_date_time(text: str, kind: type[Date] | type[DateTime] = DateTime) -> Date | DateTime | None:
    """A FHIR `date`/`dateTime`/`instant` string (or a FHIRPath one, which may stop at the hour), else None."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, tz = match.groups()
    fields = tuple(int(v) for v in (year, month, day, hour, minute, second) if v is not None)
    if not _valid(fields) or (kind is Date and len(fields) > 3):
        return None
    return kind(fields, fraction or "", tz)


def parse_time(text: str) -> Time | None:
    match = _TIME.fullmatch(text)
    if match is None:
        return None
    hour, minute, second, fraction = match.groups()
    fields = tuple(int(v) for v in (hour, minute, second) if v is not None)
    if not _valid((2000, 1, 1, *fields)):
        return None
    return Time(fields, fraction or "")


def parse_literal(kind: str, text: str) -> Temporal:
    """A `@…` literal without its `@`; the lexer has checked its shape, this checks the field ranges."""
    if kind == "time":
        value: Temporal | None = parse_time(text[1:])
    elif kind == "date":
        value = parse_date_time(text, Date)
    else:
        value = parse_date_time(text.removesuffix("T"), DateTime)
    if value is None:
        raise FhirPathError(f"syntax error: invalid date/time literal @{text}")
    return value


def compare(a: Temporal, b: Temporal) -> int | None:
    """-1, 0 or 1; None when the answer depends on fields one of them lacks (fhirpath.html#comparison)."""
    fa, fb = a.fields, b.fields
    if len(fa) > 3 and len(fb) > 3 and a.kind != "Time":
        if (a.tz is None) != (b.tz is None):
            return None  # one is local time, the other is not: their order is not known
        if a.tz is not None and a.tz != b.tz:
            fa, fb = a.utc_fields(), b.utc_fields()  # type: ignore[attr-defined]
    common = min(len(fa), len(fb))
    seconds = a._SECONDS
    for i in range(common):
        x = fa[i] if i != seconds else (Decimal(f"{fa[i]}.{a.fraction}") if a.fraction else fa[i])
        y = fb[i] if i != seconds else (Decimal(f"{fb[i]}.{b.fraction}") if b.fraction else fb[i])
        if x != y:
            return -1 if x < y else 1
    return 0 if len(fa) == len(fb) else None


def comparable_kinds(a: Temporal, b: Temporal) -> bool:
    """A Date converts implicitly to a DateTime (fhirpath.html#conversion); a Time compares only with a Time."""
    return (a.kind == "Time") == (b.kind == "Time")


def add(value: Temporal, amount: Decimal, unit: str) -> Temporal:
    """`value + amount unit` (fhirpath.html#date-time-arithmetic): whole units only, the value's precision kept."""
    field = _UNIT_FIELDS.get(unit.removesuffix("s") if len(unit) > 3 else unit)
    if field is None:
        raise FhirPathError(f"cannot add a quantity in '{unit}' to a {value.kind}")
    count = int(amount)  # truncated: `+ 7.7 days` adds 7 days
    if unit in ("week", "weeks", "wk"):
        count *= 7
    if isinstance(value, Time):
        if field < 3:
            raise FhirPathError(f"cannot add a quantity in '{unit}' to a Time")
        fields = (2000, 1, 1, *value.fields)
    else:
        fields = value.fields
    precision = len(fields)
    finest = 6 if precision == 6 and value.fraction else precision - 1
    if field > finest >= 2:
        # A quantity finer than the value is converted to the value's precision, truncating.
        count = int(count * _FIELD_SECONDS[field] / _FIELD_SECONDS[finest])
        field = finest
    elif field == 1 and finest == 0:
        count, field = int(count / 12), 0
    moment = _moment(fields, value.fraction)
    try:
        if field == 0:
            moment = _add_months(moment, count * 12)
        elif field == 1:
            moment = _add_months(moment, count)
        else:
            moment += timedelta(seconds=float(_FIELD_SECONDS[field] * count))
    except (OverflowError, ValueError) as exc:
        raise FhirPathError(f"date arithmetic out of range: {value} + {amount} {unit}") from exc
    new_fields = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)[:precision]
    fraction = f"{moment.microsecond // 1000:03d}"[:len(value.fraction)] if value.fraction else ""
    if isinstance(value, Time):
        return Time(new_fields[3:], fraction)
    return type(value)(new_fields, fraction, value.tz)


def _moment(fields: tuple[int, ...], fraction: str) -> datetime:
    full = fields + (1, 1, 0, 0, 0)[len(fields) - 1:] if len(fields) < 6 else fields
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return datetime(*full[:6], micro)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


_BOUNDARY_DIGITS = {  # precision in digits -> how many of (year, month, day, hour, minute, second) it keeps
    "Date": {4: 1, 6: 2, 8: 3},
    "DateTime": {4: 1, 6: 2, 8: 3, 10: 4, 12: 5, 14: 6, 17: 6},
    "Time": {2: 4, 4: 5, 6: 6, 9: 6},
}


def boundary(value: Temporal, digits: int | None, high: bool) -> Temporal | None:
    """lowBoundary()/highBoundary() (fhirpath.html#lowboundary): the earliest or latest value the partial value
    can stand for, at `digits` precision; None for a precision the type does not have."""
    kept = _BOUNDARY_DIGITS[value.kind]
    digits = max(kept) if digits is None else digits
    if digits not in kept:
        return None
    fields = value.fields
    if value.kind != "Date" and len(fields) == (4 if value.kind == "DateTime" else 1):
        fields = (*fields, 0)  # an hour alone is read as that hour's first minute
    full = [*(2000, 1, 1), *fields] if value.kind == "Time" else list(fields)
    complete = len(full) == 6
    for i in range(len(full), 6):
        if i == 2:
            full.append(calendar.monthrange(full[0], full[1])[1] if high else 1)
        else:
            full.append((12, None, 23, 59, 59)[i - 1] if high else (1, 1, 0, 0, 0)[i - 1])
    fill = "9" if high else "0"
    fraction = (value.fraction if complete else "") + fill * 3
    fraction = fraction[:3] if digits in (9, 17) else ""
    count = kept[digits]
    if value.kind == "Time":
        return Time(tuple(full[3:count]), fraction)
    tz = (value.tz or ("-12:00" if high else "+14:00")) if count > 3 else None
    return type(value)(tuple(full[:count]), fraction, tz)


def today() -> Date:
    now = datetime.now()
    return Date((now.year, now.month, now.day))


def now() -> DateTime:
    moment = datetime.now().astimezone()
    offset = int(moment.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    tz = f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    fields = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    return DateTime(fields, f"{moment.microsecond // 1000:03d}", tz)


def time_of_day() -> Time:
    moment = datetime.now()
    return Time((moment.hour, moment.minute, moment.second), f"{moment.microsecond // 1000:03d}")
