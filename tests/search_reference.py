"""A slow, brute-force reference for FHIR R4 search matching, written from docs/search.md and search.html.

It shares no code with the server's search path (fhir_server.search, fhir_server.store,
fhir_server.fhir.fhirpath): it reads HL7's SearchParameter definitions from the checked-in JSON, evaluates
each parameter's FHIRPath expression with fhirpathpy on every resource, interprets the values by their
FHIR type (Coding, CodeableConcept, Identifier, ContactPoint, HumanName, Address, Period, Timing, Quantity,
Range, Reference, primitives) and compares them with the search value in plain Python.

Where fhirpathpy cannot evaluate an expression as search needs it, the expression is rewritten first:
- `X as T` and `X.as(T)` become `X.ofType(T)`: fhirpathpy raises on `as` over a collection of several
  items (`Observation.component.value as Quantity`), and search wants the filtering meaning anyway;
  `DateTime` (as written in Observation's composite components) becomes the FHIR type `dateTime`.
- `X.where(resolve() is T)`: fhirpathpy has no `resolve()`. The `where` is removed and the references are
  kept when their reference text (relative or absolute) names a resource of type T.
- `Resource.` / `DomainResource.` roots become the resource's own type (fhirpathpy does not match them).
- Of a `|` union, only the branches rooted at the searched resource type are evaluated.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from functools import cache
from pathlib import Path
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

DEFINITIONS = Path(__file__).resolve().parents[1] / "fhir_server" / "fhir" / "definitions"
R4 = models["r4"]

# docs/search.md, "Where parameters come from".
NOT_SUPPORTED = frozenset({"_text", "_content", "_query", "_filter", "_contained"})
# Parameters that shape the answer rather than choose the resources (search.html#return).
RESULT_PARAMETERS = frozenset({
    "_count", "_sort", "_total", "_summary", "_elements", "_format", "_pretty", "_cursor", "_include",
    "_revinclude", "_contained", "_containedType",
})
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
CONTACT_POINT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


# --------------------------------------------------------------------------------------------- definitions

@cache
def _definitions(name: str) -> dict:
    return json.loads((DEFINITIONS / name).read_text())


def all_parameters() -> tuple[dict, ...]:
    return tuple(_definitions("search_parameters.json")["searchParameters"])


@cache
def bound_code_system(expression: str, resource_type: str) -> str | None:
    """The one CodeSystem that the required binding of the `code` element named by a path draws from
    (docs/search.md: `Patient.gender` is indexed as `http://hl7.org/fhir/administrative-gender|female`)."""
    path = expression.strip()
    while path.startswith("(") and path.endswith(")"):
        path = path[1:-1].strip()
    path = re.sub(r"\.(?:where|ofType)\((?:[^()]|\([^()]*\))*\)", "", path)
    if not re.fullmatch(r"[A-Za-z]+(?:\.[A-Za-z]+)+", path):
        return None
    elements = _definitions("elements.json")["types"]
    systems = _definitions("code_systems.json")["codeSystems"]
    current, prefix = resource_type, ""
    segments = path.split(".")[1:]
    for i, segment in enumerate(segments):
        key = f"{prefix}.{segment}" if prefix else segment
        declared = elements.get(current, {}).get(key)
        if declared is None:
            return None
        if declared.startswith("#"):  # a content reference to another backbone element of the type
            declared, key = "BackboneElement", declared[1:].split(".", 1)[1]
        if i == len(segments) - 1:
            return systems.get(current, {}).get(key) if declared == "code" else None
        if declared in ("BackboneElement", "Element"):
            prefix = key
        elif declared[0].isupper() and "|" not in declared:
            current, prefix = declared, ""
        else:
            return None
    return None


@cache
def parameter_by_url(url: str) -> dict:
    for definition in all_parameters():
        if definition["url"] == url:
            return definition
    raise KeyError(url)


@cache
def parameters_for(resource_type: str) -> dict[str, dict]:
    """code -> definition, for a resource type: its own parameters, then DomainResource's and Resource's."""
    found: dict[str, dict] = {}
    for base in (resource_type, "DomainResource", "Resource"):
        for definition in all_parameters():
            if base in definition["base"]:
                found.setdefault(definition["code"], definition)
    return found


# --------------------------------------------------------------------------------------------- escaping

@cache
def split_unescaped(text: str, separator: str, maxsplit: int = -1) -> tuple[str, ...]:
    r"""Split on `separator` where it is not escaped by a backslash; escapes are kept (search.html#escaping)."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == separator and maxsplit != 0:
            parts.append("".join(current))
            current = []
            maxsplit -= 1
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


@cache
def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def escape(text: str) -> str:
    """Escape a literal for use in a search value: `\\`, `,`, `$` and `|`."""
    return re.sub(r"([\\,$|])", r"\\\1", text)


# --------------------------------------------------------------------------------------------- FHIRPath

@dataclass(frozen=True)
class Branch:
    """One branch of a parameter's expression, rewritten for fhirpathpy, with its `resolve() is T` filter."""

    expression: str
    target_type: str | None


_PRIMITIVE_CASE = {"DateTime": "dateTime", "String": "string", "Boolean": "boolean", "Date": "date",
                   "Decimal": "decimal", "Integer": "integer", "Time": "time", "Instant": "instant"}


def split_union(expression: str) -> list[str]:
    """The top-level `|` branches of a FHIRPath expression."""
    parts, depth, quoted, current = [], 0, False, []
    for ch in expression:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "|" and depth == 0 and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _rewrite(branch: str) -> Branch:
    target = None
    found = re.search(r"\.where\(\s*resolve\(\)\s+is\s+([A-Za-z]+)\s*\)\s*$", branch)
    if found:
        target = found.group(1)
        branch = branch[:found.start()]
    branch = re.sub(r"\s+as\s+([A-Za-z]+)", r".ofType(\1)", branch)
    branch = re.sub(r"\.as\(\s*([A-Za-z]+)\s*\)", r".ofType(\1)", branch)
    branch = re.sub(r"ofType\(([A-Za-z]+)\)", lambda m: f"ofType({_PRIMITIVE_CASE.get(m.group(1), m.group(1))})",
                    branch)
    if "resolve()" in branch:
        raise NotImplementedError(f"resolve() in {branch!r}")
    return Branch(branch, target)


@cache
def branches_for(expression: str, resource_type: str) -> tuple[Branch, ...]:
    """The branches of `expression` that apply to `resource_type`, rewritten for fhirpathpy."""
    kept = []
    for branch in split_union(expression):
        inner = branch
        while inner.startswith("(") and inner.endswith(")") and _balanced(inner[1:-1]):
            inner = inner[1:-1].strip()
        root = re.match(r"\(*\s*([A-Za-z]+)", inner)
        if not root:
            continue
        name = root.group(1)
        if name in ("Resource", "DomainResource"):
            inner = inner[:root.start(1)] + resource_type + inner[root.end(1):]
            name = resource_type
        if name == resource_type:
            kept.append(_rewrite(inner))
    return tuple(kept)


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


@cache
def _compiled(expression: str) -> Callable:
    return fhirpath_compile(expression, R4, {"returnRawData": True})


@dataclass(frozen=True)
class Typed:
    """A FHIRPath result: its FHIR type name when fhirpathpy knows it, and its JSON data."""

    type: str | None
    data: Any
    node: Any = None
    system: str | None = None  # of a `code` value, the CodeSystem of its required binding


def _typed(item: Any) -> Typed | None:
    if isinstance(item, ResourceNode):
        data, path = item.data, item.path
        if data is None:
            return None
        if path and path.startswith("System."):
            path = _PRIMITIVE_CASE.get(path[7:], path[7:])
        elif path and "." in path:
            path = None  # a BackboneElement
        return Typed(path, data, item)
    if item is None:
        return None
    if isinstance(item, bool):
        return Typed("boolean", item)
    return Typed(None, item if isinstance(item, int | float | Decimal | str | dict) else str(item))


def evaluate(resource_or_node: Any, expression: str) -> list[Typed]:
    result = _compiled(expression)(resource_or_node, {})
    return [t for t in map(_typed, result) if t is not None]


def reference_type(reference: str) -> str | None:
    """The resource type a reference text names (`Patient/1`, `http://x/fhir/Patient/1/_history/2`)."""
    found = re.search(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$", reference)
    return found.group(1) if found else None


def element_values(resource: dict, definition: dict) -> list[Typed]:
    """Every value of the parameter's expression on this resource."""
    expression = definition.get("expression")
    if not expression:
        raise NotImplementedError(f"{definition['code']} has no expression")
    values = []
    for branch in branches_for(expression, resource["resourceType"]):
        for value in evaluate(resource, branch.expression):
            if branch.target_type is not None:
                reference = value.data.get("reference") if isinstance(value.data, dict) else None
                if not isinstance(reference, str) or reference_type(reference) != branch.target_type:
                    continue
            if value.type == "code" and isinstance(value.data, str):
                system = bound_code_system(branch.expression, resource["resourceType"])
                if system:
                    value = Typed(value.type, value.data, value.node, system)
            values.append(value)
    return values


# --------------------------------------------------------------------------------------------- shapes

def kind(value: Typed) -> str:
    """The FHIR type of a value: fhirpathpy's when it knows it, else guessed from the JSON shape."""
    data = value.data
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, int | float | Decimal):
        return value.type or "decimal"
    if isinstance(data, str):
        return value.type or "string"
    if value.type and value.type[0].isupper():
        return value.type
    keys = set(data) - {"id", "extension"}
    if "coding" in keys:
        return "CodeableConcept"
    if keys & {"family", "given", "prefix", "suffix"}:
        return "HumanName"
    if keys & {"line", "city", "district", "state", "postalCode", "country"}:
        return "Address"
    if "reference" in keys:
        return "Reference"
    if keys and keys <= {"start", "end"}:
        return "Period"
    if keys & {"event", "repeat"}:
        return "Timing"
    if keys and keys <= {"low", "high"}:
        return "Range"
    if "value" in keys and (keys & {"unit", "comparator", "code"} or isinstance(data["value"], int | float | Decimal)):
        return "Quantity"
    if "value" in keys and data.get("system") in CONTACT_POINT_SYSTEMS:
        return "ContactPoint"
    if "value" in keys:
        return "Identifier"
    if keys & {"code", "system", "display"}:
        return "Coding"
    if keys == {"text"}:
        return "CodeableConcept"
    return "Element"


# --------------------------------------------------------------------------------------------- string

@cache
def normalise(text: str) -> str:
    """docs/search.md: Unicode NFKD, combining marks removed, case folded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def string_values(value: Typed) -> list[str]:
    data, k = value.data, kind(value)
    if isinstance(data, str):
        return [data]
    if not isinstance(data, dict):
        return []
    if k == "HumanName":
        fields = ("family", "given", "prefix", "suffix", "text")
    elif k == "Address":
        fields = ("line", "city", "district", "state", "postalCode", "country", "text")
    else:
        fields = ()
    out: list[str] = []
    for field in fields:
        item = data.get(field)
        out.extend(x for x in (item if isinstance(item, list) else [item]) if isinstance(x, str))
    return out


def match_string(stored: str, modifier: str | None, search: str) -> bool:
    if modifier == "exact":
        return stored == search
    if modifier == "contains":
        return normalise(search) in normalise(stored)
    return normalise(stored).startswith(normalise(search))


# --------------------------------------------------------------------------------------------- token

@dataclass(frozen=True)
class Token:
    system: str | None
    code: str | None


def tokens(value: Typed) -> list[Token]:
    data, k = value.data, kind(value)
    if isinstance(data, bool):
        return [Token(None, "true" if data else "false")]
    if isinstance(data, str):
        return [Token(value.system if value.type == "code" else None, data)]
    if isinstance(data, int | float | Decimal):
        return [Token(None, str(data))]
    if k == "Coding":
        return [Token(data.get("system"), data.get("code"))] if data.get("code") or data.get("system") else []
    if k == "CodeableConcept":
        return [Token(c.get("system"), c.get("code")) for c in data.get("coding", [])
                if c.get("code") or c.get("system")]
    if k == "Identifier":
        return [Token(data.get("system"), data.get("value"))] if data.get("value") or data.get("system") else []
    if k == "ContactPoint":
        return [Token(None, data["value"])] if data.get("value") else []
    return []


def token_texts(value: Typed) -> list[str]:
    """What `:text` searches: CodeableConcept.text, Coding.display, Identifier.type.text."""
    data, k = value.data, kind(value)
    if not isinstance(data, dict):
        return []
    if k == "Coding":
        return [data["display"]] if data.get("display") else []
    if k == "CodeableConcept":
        texts = [data["text"]] if data.get("text") else []
        return texts + [c["display"] for c in data.get("coding", []) if c.get("display")]
    if k == "Identifier":
        text = (data.get("type") or {}).get("text")
        return [text] if text else []
    return []


@cache
def parse_token(search: str) -> tuple[bool, str | None, str | None]:
    """(system given, system, code): `code`, `|code`, `system|code`, `system|`."""
    parts = split_unescaped(search, "|", 1)
    if len(parts) == 1:
        return False, None, unescape(parts[0])
    return True, unescape(parts[0]) or None, unescape(parts[1]) or None


def match_token(token: Token, search: str) -> bool:
    system_given, system, code = parse_token(search)
    if code is not None and token.code != code:
        return False
    if system_given:
        if system is None:
            return token.system is None and code is not None
        return token.system == system
    return True


def match_of_type(value: Typed, search: str) -> bool:
    parts = [unescape(p) for p in split_unescaped(search, "|")]
    if len(parts) != 3:
        raise ValueError(f"of-type takes typeSystem|typeCode|value, not {search!r}")
    type_system, type_code, identifier = parts
    if kind(value) != "Identifier" or value.data.get("value") != identifier:
        return False
    return any(c.get("code") == type_code and (not type_system or c.get("system") == type_system)
               for c in (value.data.get("type") or {}).get("coding", []))


# --------------------------------------------------------------------------------------------- date

MINUS_INFINITY, PLUS_INFINITY = float("-inf"), float("inf")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$")


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


@cache
def date_range(text: str) -> tuple[int, int]:
    """`[start, end)` in microseconds since 1970 UTC, set by the value's precision; no zone means UTC."""
    found = DATE.match(text.strip())
    if not found:
        raise ValueError(f"not a FHIR date: {text!r}")
    g = found.groupdict()
    year = int(g["y"])
    if g["m"] is None:
        return _micros(datetime(year, 1, 1, tzinfo=UTC)), _micros(datetime(year + 1, 1, 1, tzinfo=UTC))
    month = int(g["m"])
    if g["d"] is None:
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
        return _micros(start), _micros(end)
    day = datetime(year, month, int(g["d"]), tzinfo=UTC)
    if g["H"] is None:
        return _micros(day), _micros(day + timedelta(days=1))
    moment = day + timedelta(hours=int(g["H"]), minutes=int(g["M"]))
    if g["tz"] and g["tz"] != "Z":
        sign = 1 if g["tz"][0] == "+" else -1
        moment -= sign * timedelta(hours=int(g["tz"][1:3]), minutes=int(g["tz"][4:6]))
    start = _micros(moment)
    if g["S"] is None:
        return start, start + 60_000_000
    start += int(g["S"]) * 1_000_000
    if g["f"] is None:
        return start, start + 1_000_000
    digits = g["f"]
    start += int(digits[:6].ljust(6, "0"))
    return start, start + max(1, 10 ** (6 - len(digits)) if len(digits) <= 6 else 1)


def date_ranges(value: Typed) -> list[tuple[float, float]]:
    data, k = value.data, kind(value)
    if isinstance(data, str):
        try:
            return [date_range(data)]
        except ValueError:
            return []  # e.g. CarePlan.activity.detail.scheduledString
    if not isinstance(data, dict):
        return []
    if k == "Period":
        return _period(data)
    if k == "Timing":
        out = []
        for event in data.get("event", []):
            try:
                out.append(date_range(event))
            except ValueError:
                pass
        bounds = (data.get("repeat") or {}).get("boundsPeriod")
        if bounds:
            out.extend(_period(bounds))
        return out
    return []


def _period(period: dict) -> list[tuple[float, float]]:
    if not period.get("start") and not period.get("end"):
        return []
    try:
        start = date_range(period["start"])[0] if period.get("start") else MINUS_INFINITY
        end = date_range(period["end"])[1] if period.get("end") else PLUS_INFINITY
    except ValueError:
        return []
    return [(start, end)]


def parse_prefixed(search: str) -> tuple[str, str]:
    if search[:2] in PREFIXES and not search[:2].isdigit():
        return search[:2], search[2:]
    return "eq", search


def match_date(stored: tuple[float, float], search: str, now: datetime) -> bool:
    prefix, text = parse_prefixed(search)
    s_start, s_end = date_range(text)
    t_start, t_end = stored
    within = s_start <= t_start and t_end <= s_end
    if prefix == "eq":
        return within
    if prefix == "ne":
        return not within
    if prefix == "gt":
        return t_end > s_end
    if prefix == "lt":
        return t_start < s_start
    if prefix == "ge":
        return t_end > s_end or within
    if prefix == "le":
        return t_start < s_start or within
    if prefix == "sa":
        return t_start >= s_end
    if prefix == "eb":
        return t_end <= s_start
    # ap: S widened on each side by 10% of the time between S and now, at least one day.
    moment = _micros(now)
    distance = 0 if s_start <= moment < s_end else min(abs(moment - s_start), abs(moment - s_end))
    widen = max(distance // 10, 86_400_000_000)
    return t_start < s_end + widen and t_end > s_start - widen


# --------------------------------------------------------------------------------------------- number, quantity

def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class Amount:
    """A stored number or quantity: a point (low == high) or a Range; None bounds are open."""

    low: Decimal | None
    high: Decimal | None
    units: tuple[tuple[str | None, str | None, str | None], ...]  # (system, code, unit) of each bound
    point: bool


def amounts(value: Typed) -> list[Amount]:
    data, k = value.data, kind(value)
    if isinstance(data, int | float | Decimal) and not isinstance(data, bool):
        number = _decimal(data)
        return [Amount(number, number, (), True)]
    if not isinstance(data, dict):
        return []
    if k == "Range":
        low, high = data.get("low") or {}, data.get("high") or {}
        if "value" not in low and "value" not in high:
            return []
        units = tuple((q.get("system"), q.get("code"), q.get("unit")) for q in (low, high) if "value" in q)
        return [Amount(_decimal(low.get("value")), _decimal(high.get("value")), units, False)]
    if k == "SampledData" or "value" not in data:
        return []
    number = _decimal(data["value"])
    if number is None:
        return []
    return [Amount(number, number, ((data.get("system"), data.get("code"), data.get("unit")),), True)]


def match_number(stored: Amount, prefix: str, text: str) -> bool:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    half = Decimal(5).scaleb(number.as_tuple().exponent - 1)
    with localcontext() as exact:  # the default 28 digits would round a long value's range to nothing
        exact.prec = 1000
        low, high = number - half, number + half
    s_low = stored.low if stored.low is not None else Decimal("-Infinity")
    s_high = stored.high if stored.high is not None else Decimal("Infinity")
    if prefix in ("eq", "ne"):
        if stored.point:
            inside = low <= s_low < high
        else:
            inside = stored.low is not None and stored.high is not None and low <= s_low and s_high < high
        return inside if prefix == "eq" else not inside
    if prefix in ("gt", "sa"):
        return s_high > number
    if prefix in ("lt", "eb"):
        return s_low < number
    if prefix == "ge":
        return s_high >= number
    if prefix == "le":
        return s_low <= number
    margin = abs(number) / 10
    return s_low <= number + margin and s_high >= number - margin


def match_quantity(stored: Amount, search: str) -> bool:
    prefix, text = parse_prefixed(search)
    parts = [unescape(p) for p in split_unescaped(text, "|")]
    if len(parts) not in (1, 3):
        raise ValueError(f"a quantity is value, value|system|code or value||code, not {search!r}")
    if len(parts) == 3:
        _, system, code = parts
        if not stored.units:
            return False
        for s_system, s_code, s_unit in stored.units:
            if system and s_system != system:
                return False
            if code and (s_code != code if system else code not in (s_code, s_unit)):
                return False
    return match_number(stored, prefix, parts[0])


# --------------------------------------------------------------------------------------------- reference

def local_reference(reference: str, base_url: str) -> tuple[str, str] | None:
    """(type, id) of a reference to a resource on this server (relative, or absolute under base_url)."""
    if reference.startswith(base_url.rstrip("/") + "/"):
        reference = reference[len(base_url.rstrip("/")) + 1:]
    found = re.fullmatch(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?", reference)
    return (found.group(1), found.group(2)) if found else None


def reference_texts(value: Typed) -> list[str]:
    data = value.data
    if isinstance(data, str):
        return [data]  # canonical / uri values of a reference parameter
    if isinstance(data, dict) and isinstance(data.get("reference"), str):
        return [data["reference"]]
    return []


def match_reference(value: Typed, modifier: str | None, search: str, base_url: str) -> bool:
    if modifier == "identifier":
        identifier = value.data.get("identifier") if isinstance(value.data, dict) else None
        return bool(identifier) and any(match_token(t, search) for t in tokens(Typed("Identifier", identifier)))
    search = unescape(search)
    for text in reference_texts(value):
        local = local_reference(text, base_url)
        if modifier:  # :Type
            if local is None or local[0] != modifier:
                continue
            wanted = local_reference(search, base_url)
            if wanted is not None:
                if wanted == local:
                    return True
            elif local[1] == search:
                return True
            continue
        if re.match(r"^[a-z][a-z0-9+.\-]*:", search):  # an absolute URL
            wanted = local_reference(search, base_url) if search.startswith(base_url.rstrip("/") + "/") else None
            if wanted is not None:
                if wanted == local:
                    return True
            elif text == search or ("|" not in search and text.split("|", 1)[0] == search):
                return True
        elif "/" in search:
            if local is not None and local == local_reference(search, base_url):
                return True
        elif local is not None and local[1] == search:
            return True
    return False


# --------------------------------------------------------------------------------------------- uri

def match_uri(stored: str, modifier: str | None, search: str) -> bool:
    if stored == search:
        return True
    if modifier == "below":
        return stored.startswith(search.rstrip("/") + "/")
    if modifier == "above":
        return search.startswith(stored.rstrip("/") + "/")
    return False


# --------------------------------------------------------------------------------------------- matching

MODIFIERS = {
    "string": {None, "exact", "contains", "missing"},
    "token": {None, "not", "text", "of-type", "missing"},
    "date": {None, "missing"},
    "number": {None, "missing"},
    "quantity": {None, "missing"},
    "uri": {None, "below", "above", "missing"},
    "composite": {None},
}


def indexable(definition: dict, value: Typed, base_url: str) -> bool:
    """Whether a value gives the parameter something to search on: what `:missing` counts."""
    kind_of = definition["type"]
    if kind_of == "string":
        return bool(string_values(value))
    if kind_of == "token":
        return bool(tokens(value) or token_texts(value))
    if kind_of == "date":
        return bool(date_ranges(value))
    if kind_of in ("number", "quantity"):
        return bool(amounts(value))
    if kind_of == "uri":
        return isinstance(value.data, str)
    if kind_of == "reference":
        return bool(reference_texts(value)) or bool(isinstance(value.data, dict) and value.data.get("identifier"))
    return True


def match_value(definition: dict, value: Typed, modifier: str | None, search: str, *, base_url: str,
                now: datetime) -> bool:
    """One stored value against one search value (no `,`), for every modifier but :not and :missing."""
    kind_of = definition["type"]
    if kind_of == "string":
        search = unescape(search)
        return any(match_string(s, modifier, search) for s in string_values(value))
    if kind_of == "token":
        if modifier == "text":
            search = unescape(search)
            return any(match_string(t, None, search) for t in token_texts(value))
        if modifier == "of-type":
            return match_of_type(value, search)
        return any(match_token(t, search) for t in tokens(value))
    if kind_of == "date":
        return any(match_date(r, search, now) for r in date_ranges(value))
    if kind_of == "number":
        prefix, text = parse_prefixed(search)
        return any(match_number(a, prefix, text) for a in amounts(value))
    if kind_of == "quantity":
        return any(match_quantity(a, search) for a in amounts(value))
    if kind_of == "reference":
        return match_reference(value, modifier, search, base_url)
    if kind_of == "uri":
        return isinstance(value.data, str) and match_uri(value.data, modifier, unescape(search))
    raise NotImplementedError(f"parameter type {kind_of}")


def _check_modifier(definition: dict, modifier: str | None) -> None:
    kind_of = definition["type"]
    if kind_of == "reference":
        if modifier in (None, "identifier", "missing") or (modifier and modifier[0].isupper()):
            return
    elif modifier in MODIFIERS.get(kind_of, {None}):
        return
    raise ValueError(f"modifier :{modifier} is not valid on {kind_of} parameter {definition['code']}")


def composite_elements(resource: dict, definition: dict) -> list[list[list[Typed]]]:
    """For each element the composite's expression selects, the values of each of its components."""
    elements = []
    for branch in branches_for(definition["expression"], resource["resourceType"]):
        for base in evaluate(resource, branch.expression):
            node = base.node if base.node is not None else base.data
            elements.append([_component_values(node, c["expression"]) for c in definition["component"]])
    return elements


def _component_values(node: Any, expression: str) -> list[Typed]:
    values = []
    for branch in split_union(expression):
        values.extend(evaluate(node, _rewrite(branch).expression))
    return values


def composite_match(elements: list[list[list[Typed]]], definition: dict, search: str, *, base_url: str,
                    now: datetime) -> bool:
    """Components joined by `$`, all matched on the same element (search.html#composite)."""
    components = definition["component"]
    parts = split_unescaped(search, "$")
    if len(parts) != len(components):
        raise ValueError(f"{definition['code']} takes {len(components)} `$`-separated parts, not {search!r}")
    subs = [parameter_by_url(c["definition"]) for c in components]
    return any(
        all(any(match_value(sub, v, None, part, base_url=base_url, now=now) for v in values)
            for sub, part, values in zip(subs, parts, element, strict=True))
        for element in elements
    )


def parameter_values(resource: dict, definition: dict) -> list:
    """What matches() compares: the values, or for a composite the component values of each element."""
    if definition["type"] == "composite":
        return composite_elements(resource, definition)
    return element_values(resource, definition)


def predicate(param_definition: dict, modifier: str | None, value: str, *, base_url: str,
              now: datetime | None = None) -> Callable[[list], bool] | None:
    """A test of parameter_values(resource, param_definition) for one search parameter with its
    `,`-separated value (docs/search.md); None when the value is empty (ignored)."""
    now = now or datetime.now(UTC)
    _check_modifier(param_definition, modifier)
    alternatives = [v for v in split_unescaped(value, ",") if v != ""]
    if not alternatives:
        return None
    if param_definition["type"] == "composite":
        return lambda values: any(composite_match(values, param_definition, v, base_url=base_url, now=now)
                                  for v in alternatives)
    if modifier == "missing":
        if value not in ("true", "false"):
            raise ValueError(f":missing takes true or false, not {value!r}")
        return lambda values: any(indexable(param_definition, v, base_url) for v in values) == (value == "false")

    def any_match(values: list) -> bool:
        return any(match_value(param_definition, v, None if modifier == "not" else modifier, a,
                               base_url=base_url, now=now)
                   for v in values for a in alternatives)

    if modifier == "not":
        return lambda values: not any_match(values)
    return any_match


def matches(resource: dict, param_definition: dict, modifier: str | None, value: str, *, base_url: str,
            now: datetime | None = None) -> bool:
    """Whether `resource` matches one search parameter with its `,`-separated value (docs/search.md)."""
    test = predicate(param_definition, modifier, value, base_url=base_url, now=now)
    return test is None or test(parameter_values(resource, param_definition))


# --------------------------------------------------------------------------------------------- search

class Reference:
    """Brute-force search over a fixed list of resources; caches each parameter's values per resource."""

    def __init__(self, resources: Iterable[dict], *, base_url: str, now: datetime | None = None):
        self.resources = list(resources)
        self.base_url = base_url
        self.now = now or datetime.now(UTC)
        self._values: dict[tuple[str, int], list[list]] = {}
        self._by_type: dict[str, list[dict]] = {}
        for resource in self.resources:
            self._by_type.setdefault(resource["resourceType"], []).append(resource)

    def of_type(self, resource_type: str) -> list[dict]:
        return self._by_type.get(resource_type, [])

    def values(self, resource_type: str, definition: dict) -> list[list]:
        """The parameter's values on each resource of the type, in the order of of_type()."""
        key = (resource_type, id(definition))
        if key not in self._values:
            self._values[key] = [parameter_values(r, definition) for r in self.of_type(resource_type)]
        return self._values[key]

    def definition(self, resource_type: str, code: str) -> dict:
        definition = parameters_for(resource_type).get(code)
        if definition is None:
            raise ValueError(f"unknown search parameter {code} for {resource_type}")
        if code in NOT_SUPPORTED:
            raise NotImplementedError(f"{code} is not supported (docs/search.md)")
        return definition

    def matching(self, resource_type: str, name: str, value: str) -> set[str]:
        code, _, modifier = name.partition(":")
        definition = self.definition(resource_type, code)
        resources = self.of_type(resource_type)
        test = predicate(definition, modifier or None, value, base_url=self.base_url, now=self.now)
        if test is None:
            return {r["id"] for r in resources}
        values = self.values(resource_type, definition)
        return {r["id"] for r, v in zip(resources, values, strict=True) if test(v)}

    def search(self, resource_type: str, params: list[tuple[str, str]]) -> set[str]:
        """AND of the parameters, OR of each one's `,`-separated values."""
        found = {r["id"] for r in self.of_type(resource_type)}
        for name, value in params:
            if name.partition(":")[0] in RESULT_PARAMETERS or value == "":
                continue
            found &= self.matching(resource_type, name, value)
        return found


def search(resources: list[dict], resource_type: str, params: list[tuple[str, str]], *, base_url: str,
           now: datetime | None = None) -> set[str]:
    """The ids of the resources of `resource_type` that match every parameter (docs/search.md)."""
    return Reference(resources, base_url=base_url, now=now).search(resource_type, params)
