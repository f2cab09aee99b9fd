"""FHIR date, dateTime and instant values as UTC ranges (search.html#date, datatypes.html#dateTime).

A value stands for the whole interval its precision implies: `2024` is all of 2024, `2024-03-05T10:00`
is that minute. Values without a zone are taken as UTC.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


# The open ends of a Period without a start or an end, and the bounds of any stored range.
MIN_DATE = datetime(1, 1, 1)
MAX_DATE = datetime(9999, 12, 31, 23, 59, 59)


@dataclass(frozen=True)
class DateRange:
    """Half-open interval [start, end) in naive UTC."""

    start: datetime
    end: datetime


def parse_range(text: str) -> DateRange:
    """Parse a FHIR date/dateTime/instant into the interval it denotes; ValueError if malformed."""
    m = _DATE.match(text)
    if not m:
        raise ValueError(f"not a FHIR date, dateTime or instant: {text!r}")
    try:
        return _range(m)
    except (ValueError, OverflowError):
        raise ValueError(f"not a valid date: {text!r}") from None


def _range(m: re.Match) -> DateRange:
    y, mo, d = int(m["y"]), int(m["m"] or 1), int(m["d"] or 1)
    hh, mi, ss = int(m["H"] or 0), int(m["M"] or 0), int(m["S"] or 0)
    frac = m["f"] or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    start = datetime(y, mo, d, hh, mi, ss, micro)
    if m["S"] is not None and frac:
        end = start + timedelta(microseconds=10 ** max(0, 6 - len(frac)))
    elif m["S"] is not None:
        end = start + timedelta(seconds=1)
    elif m["M"] is not None:
        end = start + timedelta(minutes=1)
    elif m["d"] is not None:
        end = start + timedelta(days=1)
    elif m["m"] is not None:
        end = start + timedelta(days=calendar.monthrange(y, mo)[1])
    else:
        end = datetime(y + 1, 1, 1) if y < 9999 else MAX_DATE
    if m["tz"] and m["tz"] != "Z":
        sign = 1 if m["tz"][0] == "+" else -1
        offset = timedelta(hours=int(m["tz"][1:3]), minutes=int(m["tz"][4:6])) * sign
        start, end = max(start - offset, MIN_DATE), min(end - offset, MAX_DATE)
    return DateRange(start, min(end, MAX_DATE))


def format_instant(moment: datetime) -> str:
    """A naive-UTC datetime as a FHIR instant with millisecond precision."""
    return moment.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: str) -> datetime:
    """The start of a FHIR date/dateTime/instant, as naive UTC (for _since and _at)."""
    return parse_range(text).start
