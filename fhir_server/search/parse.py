"""Search query string -> SearchQuery (search.html#ptypes, search.html#prefix).

This issue supports `_id`, `_lastUpdated` and `identifier` (enough for conditional interactions); the
definitions-driven parameters arrive with the search issue behind the same SearchQuery shape. A parameter
that is not supported is an explicit 400, never silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.fhir.errors import FhirError, Issue, bad_request
from fhir_server.search.dates import DateRange, parse_range

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
# Parameters about the shape of the answer, not which resources match (search.html#return).
RESULT_PARAMETERS = frozenset({"_count", "_summary", "_elements", "_format", "_pretty", "_total", "_cursor"})


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
class Criterion:
    """One parameter: its values are OR-ed; several Criteria are AND-ed (search.html#combining)."""

    name: str
    values: tuple[str | TokenValue | DateValue, ...]


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str | None
    criteria: tuple[Criterion, ...]
    count: int | None = None


def parse_token(text: str) -> TokenValue:
    if "|" not in text:
        return TokenValue(None, text or None, False)
    system, _, code = text.partition("|")
    return TokenValue(system or None, code or None, True)


def parse_date(name: str, text: str) -> DateValue:
    prefix = text[:2] if text[:2] in PREFIXES else "eq"
    raw = text[2:] if text[:2] in PREFIXES else text
    try:
        return DateValue(prefix, parse_range(raw))
    except ValueError as exc:
        raise bad_request(f"parameter {name}: {exc}", name) from None


def _split_or(value: str) -> list[str]:
    """Split on commas not escaped with a backslash (search.html#escaping)."""
    parts, current, escaped = [], "", False
    for ch in value:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def parse_query(resource_type: str | None, params: list[tuple[str, str]], *,
                max_count: int = 1000) -> SearchQuery:
    """Parse query parameters into a SearchQuery; raise a 400 naming any unsupported parameter."""
    criteria: list[Criterion] = []
    count = None
    unknown: list[str] = []
    for name, value in params:
        base, _, modifier = name.partition(":")
        if value == "":
            continue  # an empty parameter has no meaning and is ignored (search.html#ptypes)
        if base == "_count":
            if not value.isdigit():
                raise bad_request(f"_count must be a non-negative integer, not {value!r}", "_count")
            count = min(int(value), max_count)
        elif base in RESULT_PARAMETERS:
            continue
        elif modifier:
            unknown.append(name)
        elif base == "_id":
            criteria.append(Criterion("_id", tuple(v for v in _split_or(value) if v)))
        elif base == "_lastUpdated":
            criteria.append(Criterion("_lastUpdated", (parse_date(base, value),)))
        elif base == "identifier" and resource_type is not None:
            criteria.append(Criterion("identifier", tuple(parse_token(v) for v in _split_or(value))))
        else:
            unknown.append(name)
    if unknown:
        raise FhirError(400, [
            Issue("not-supported", f"search parameter {n} is not supported", expression=(n,)) for n in unknown
        ])
    return SearchQuery(resource_type, tuple(criteria), count)
