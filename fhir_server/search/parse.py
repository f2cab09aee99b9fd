"""Query parameters -> SearchQuery (search.html): criteria, chains, `_has`, and the result parameters.

Parameters are looked up in the SearchParameter registry for the resource type. An unknown or unsupported
parameter is collected in `SearchQuery.ignored` when handling is lenient and is a 400 when it is strict
(search.html#errors); a malformed value is a 400 either way, naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_server.fhir.definitions import resource_types
from fhir_server.fhir.errors import FhirError, Issue, bad_request
from fhir_server.fhir.search_parameters import UNSUPPORTED, SearchParameter, common, for_type
from fhir_server.search import values as v
from fhir_server.search.dates import parse_range
from fhir_server.search.index import composite_parts

# Parameters about the shape of the answer, not which resources match (search.html#return).
RESULT_PARAMETERS = frozenset({"_count", "_summary", "_elements", "_format", "_pretty", "_total", "_cursor",
                               "_sort", "_include", "_revinclude", "_type"})
_MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"not", "text", "of-type", "in", "not-in", "missing", "above", "below"},
    "reference": {"identifier", "missing"},
    "date": {"missing"}, "number": {"missing"}, "quantity": {"missing"},
    "uri": {"below", "above", "missing"}, "composite": {"missing"},
}
MAX_CHAIN_DEPTH = 4
# Token modifiers answered by the terminology service: the repository turns them into plain codes.
TERMINOLOGY_MODIFIERS = frozenset({"in", "not-in", "above", "below"})


@dataclass(frozen=True)
class Criterion:
    """One parameter: its values are OR-ed; several Criteria are AND-ed (search.html#combining).

    `param` is None for `_id` and `_lastUpdated`, which are columns of the resource table.
    """

    name: str
    type: str
    values: tuple
    modifier: str | None = None
    param: SearchParameter | None = None


@dataclass(frozen=True)
class Chain:
    """`ref:Type.inner=…` (search.html#chaining): resources whose reference `name` points at a match."""

    name: str
    target_types: tuple[str, ...]
    inner: Criterion | Chain | Has


@dataclass(frozen=True)
class Has:
    """`_has:Type:ref:inner=…` (search.html#has): resources that a matching `Type` refers to by `ref`."""

    source_type: str
    reference: str
    inner: Criterion | Chain | Has


@dataclass(frozen=True)
class Include:
    """`_include` / `_revinclude` (search.html#include): `source:param[:target]`, `*` for any param."""

    source_type: str
    param: str
    target_type: str | None = None
    iterate: bool = False
    reverse: bool = False


@dataclass(frozen=True)
class SortKey:
    name: str
    type: str
    descending: bool


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str | None
    criteria: tuple[Criterion | Chain | Has, ...]
    count: int | None = None
    types: tuple[str, ...] = ()  # system search: `_type` (empty: every type)
    sort: tuple[SortKey, ...] = ()
    includes: tuple[Include, ...] = ()
    total: str | None = None
    ignored: tuple[str, ...] = field(default=())
    compartment: tuple[str, str] | None = None  # (compartment type, id) for [base]/Patient/1/Observation
    # Patient/$everything's start/end: keep resources whose `date` parameter overlaps it (or have none).
    care_period: tuple | None = None
    # Patient/$everything: with each page, the resources its members refer to that are outside the
    # compartment's types (practitioners, organizations, medications...).
    everything: bool = False


def _parameters(resource_type: str | None, types: tuple[str, ...]) -> dict[str, SearchParameter]:
    """The parameters of a type search, or those shared by every type of a system search (search.html#all)."""
    if resource_type is not None:
        return for_type(resource_type)
    return common(types or tuple(sorted(resource_types())))


def _values(name: str, sp_type: str, text: str, modifier: str | None, sp: SearchParameter | None,
            base_url: str) -> tuple:
    """Parse the comma-separated values of one parameter."""
    if modifier == "missing":
        if text not in ("true", "false"):
            raise ValueError("the :missing modifier takes true or false")
        return (text == "true",)
    out = []
    for part in v.split_unescaped(text, ","):
        if part == "":
            continue
        out.append(_value(sp_type, part, modifier, sp, base_url))
    return tuple(out)


def _value(sp_type: str, text: str, modifier: str | None, sp: SearchParameter | None, base_url: str) -> object:
    if sp_type == "string" or modifier == "text":
        return v.parse_string(text)
    if modifier in ("in", "not-in"):
        return v.parse_uri(text)
    if modifier == "of-type":
        parts = v.split_unescaped(text, "|")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ValueError("the :of-type modifier takes typeSystem|typeCode|value")
        return v.TokenValue(v.unescape(parts[0]) or None, f"{v.unescape(parts[1])}|{v.unescape(parts[2])}", True)
    if sp_type == "token" or modifier == "identifier":
        return v.parse_token(text)
    if sp_type == "date":
        return v.parse_date(text)
    if sp_type == "number":
        return v.parse_number(text)
    if sp_type == "quantity":
        return v.parse_quantity(text)
    if sp_type == "uri":
        return v.parse_uri(text)
    if sp_type == "reference":
        return v.parse_reference(text, base_url, modifier if modifier and modifier[:1].isupper() else None)
    if sp_type == "composite":
        return _composite(text, sp, base_url)
    raise ValueError(f"parameters of type {sp_type} are not supported")


def _composite(text: str, sp: SearchParameter | None, base_url: str) -> v.CompositeValue:
    parts = composite_parts(sp) if sp is not None else None
    if parts is None:
        raise ValueError("this composite parameter is not supported")
    pieces = v.split_unescaped(text, "$")
    if len(pieces) != 2:
        raise ValueError("a composite value has two parts joined by $")
    first, second = parts
    return v.CompositeValue(v.parse_token(pieces[0]), _value(second.type, pieces[1], None, second, base_url))


class _Parser:
    def __init__(self, resource_type: str | None, types: tuple[str, ...], base_url: str, strict: bool) -> None:
        self.resource_type = resource_type
        self.types = types
        self.base_url = base_url
        self.strict = strict
        self.ignored: list[str] = []

    def unknown(self, name: str, why: str) -> None:
        if self.strict:
            raise FhirError(400, [Issue("not-supported", why, expression=(name,))])
        self.ignored.append(name)

    def criterion(self, resource_type: str | None, name: str, text: str, depth: int = 0
                  ) -> Criterion | Chain | Has | None:
        """Parse `name=text` for resources of `resource_type`; None when ignored (lenient)."""
        if depth > MAX_CHAIN_DEPTH:
            raise bad_request(f"parameter {name}: chains are limited to {MAX_CHAIN_DEPTH} links", name)
        if name.startswith("_has:"):
            return self._has(resource_type, name, text, depth)
        head, dot, rest = name.partition(".")
        base, _, modifier = head.partition(":")
        modifier = modifier or None
        if base in UNSUPPORTED:
            self.unknown(name, f"search parameter {base} is not supported by this server")
            return None
        if base == "_id":
            if modifier not in (None, "not") or dot:
                raise bad_request(f"parameter {name}: _id takes only the :not modifier", name)
            return Criterion("_id", "token", tuple(v.unescape(p) for p in v.split_unescaped(text, ",") if p),
                             modifier)
        if base == "_lastUpdated":
            if modifier not in (None, "missing") or dot:
                raise bad_request(f"parameter {name}: _lastUpdated takes only the :missing modifier", name)
            return Criterion("_lastUpdated", "date", self._parsed(name, "date", text, modifier, None), modifier)
        if base == "_list":
            if modifier or dot:
                raise bad_request(f"parameter {name}: _list takes no modifier", name)
            return Criterion("_list", "special", tuple(p for p in v.split_unescaped(text, ",") if p))
        sp = _parameters(resource_type, self.types).get(base)
        if sp is None:
            where = resource_type or "every type searched"
            self.unknown(name, f"search parameter {base} is not known for {where}")
            return None
        if dot:
            return self._chain(resource_type, sp, name, modifier, rest, text, depth)
        if modifier is not None and modifier not in _MODIFIERS.get(sp.type, set()):
            if not (sp.type == "reference" and modifier in resource_types()):
                raise bad_request(f"parameter {name}: modifier :{modifier} is not valid on a {sp.type} parameter",
                                  name)
            if sp.target and modifier not in sp.target:
                raise bad_request(f"parameter {name}: {base} cannot refer to a {modifier}", name)
        if sp.type == "composite" and modifier != "missing" and composite_parts(sp) is None:
            self.unknown(name, f"composite parameter {base} is not supported by this server")
            return None
        return Criterion(base, sp.type, self._parsed(name, sp.type, text, modifier, sp), modifier, sp)

    def _parsed(self, name: str, sp_type: str, text: str, modifier: str | None,
                sp: SearchParameter | None) -> tuple:
        try:
            return _values(name, sp_type, text, modifier, sp, self.base_url)
        except ValueError as exc:
            raise bad_request(f"parameter {name}: {exc}", name) from None

    def _chain(self, resource_type: str | None, sp: SearchParameter, name: str, modifier: str | None,
               rest: str, text: str, depth: int) -> Chain | None:
        if sp.type != "reference":
            raise bad_request(f"parameter {name}: {sp.code} is a {sp.type} parameter, not a reference to chain "
                              "through", name)
        if modifier is not None and modifier not in resource_types():
            raise bad_request(f"parameter {name}: a chain takes a resource type modifier, not :{modifier}", name)
        targets = (modifier,) if modifier else tuple(t for t in sp.target if t in resource_types())
        inner_base = rest.partition(".")[0].partition(":")[0]
        if not modifier:
            targets = tuple(t for t in targets if inner_base in for_type(t) or inner_base in ("_id", "_lastUpdated"))
        if not targets:
            self.unknown(name, f"no resource type that {sp.code} refers to has a search parameter {inner_base}")
            return None
        # The inner criterion is parsed for each target type (so each validates it); the index rows it
        # compiles to are keyed by parameter code, so the first parse serves them all.
        inners = [self.criterion(t, rest, text, depth + 1) for t in targets]
        return None if inners[0] is None else Chain(sp.code, targets, inners[0])

    def _has(self, resource_type: str | None, name: str, text: str, depth: int) -> Has | None:
        parts = name.split(":", 3)
        if len(parts) != 4 or not parts[1] or not parts[2] or not parts[3]:
            raise bad_request(f"parameter {name}: _has takes _has:Type:reference:parameter", name)
        _, source, reference, inner_name = parts
        if source not in resource_types():
            raise bad_request(f"parameter {name}: {source} is not a resource type", name)
        ref = for_type(source).get(reference)
        if ref is None or ref.type != "reference":
            raise bad_request(f"parameter {name}: {reference} is not a reference parameter of {source}", name)
        if resource_type is not None and ref.target and resource_type not in ref.target:
            raise bad_request(f"parameter {name}: {source}.{reference} cannot refer to a {resource_type}", name)
        inner = self.criterion(source, inner_name, text, depth + 1)
        return None if inner is None else Has(source, reference, inner)


def _count(text: str, max_count: int) -> int:
    if not text.isdigit():
        raise bad_request(f"_count must be a non-negative integer, not {text!r}", "_count")
    return min(int(text), max_count)


def _sort(text: str, parser: _Parser) -> tuple[SortKey, ...]:
    keys = []
    for part in text.split(","):
        name = part.strip()
        descending = name.startswith("-")
        name = name.lstrip("-")
        if not name:
            raise bad_request(f"_sort has an empty key: {text!r}", "_sort")
        if name in ("_id", "_lastUpdated"):
            keys.append(SortKey(name, "token" if name == "_id" else "date", descending))
            continue
        params = _parameters(parser.resource_type, parser.types)
        sp = params.get(name)
        if sp is None or sp.type == "composite" or sp.type == "special":
            raise bad_request(f"_sort: {name} is not a search parameter this server can sort by here", "_sort")
        keys.append(SortKey(name, sp.type, descending))
    return tuple(keys)


def _include(name: str, text: str, resource_type: str | None) -> Include:
    reverse = name.startswith("_revinclude")
    modifier = name.partition(":")[2]
    if modifier not in ("", "iterate", "recurse"):
        raise bad_request(f"{name}: the only modifier is :iterate", name)
    parts = text.split(":")
    if text == "*":
        return Include(resource_type or "*", "*", None, bool(modifier), reverse)
    if len(parts) not in (2, 3) or parts[0] not in resource_types():
        raise bad_request(f"{name} takes SourceType:parameter[:TargetType], not {text!r}", name)
    source, param = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if param != "*":
        sp = for_type(source).get(param)
        if sp is None or sp.type != "reference":
            raise bad_request(f"{name}: {param} is not a reference parameter of {source}", name)
    if target is not None and target not in resource_types():
        raise bad_request(f"{name}: {target} is not a resource type", name)
    return Include(source, param, target, bool(modifier), reverse)


def _types(params: list[tuple[str, str]]) -> tuple[str, ...]:
    names: list[str] = []
    for name, value in params:
        if name == "_type" and value:
            names += [t.strip() for t in value.split(",") if t.strip()]
    unknown = [t for t in names if t not in resource_types()]
    if unknown:
        raise bad_request(f"_type names unknown resource types: {', '.join(unknown)}", "_type")
    return tuple(dict.fromkeys(names))


def parse_query(resource_type: str | None, params: list[tuple[str, str]], *, max_count: int = 1000,
                base_url: str = "", strict: bool = True) -> SearchQuery:
    """Parse query parameters into a SearchQuery."""
    types = _types(params) if resource_type is None else ()
    parser = _Parser(resource_type, types, base_url, strict)
    criteria: list = []
    count = total = None
    sort: tuple[SortKey, ...] = ()
    includes: list[Include] = []
    for name, value in params:
        base = name.partition(":")[0]
        if value == "":
            continue  # an empty parameter has no meaning and is ignored (search.html#ptypes)
        if base == "_count":
            count = _count(value, max_count)
        elif base == "_sort":
            sort = _sort(value, parser)
        elif base in ("_include", "_revinclude"):
            includes += [_include(name, part, resource_type) for part in value.split(",")]
        elif base == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise bad_request(f"_total takes none, estimate or accurate, not {value!r}", "_total")
            total = value
        elif base in RESULT_PARAMETERS:
            continue
        else:
            criterion = parser.criterion(resource_type, name, value)
            if criterion is not None:
                criteria.append(criterion)
    return SearchQuery(resource_type, tuple(criteria), count, types, sort, tuple(includes), total,
                       tuple(parser.ignored))


def parse_instant_param(name: str, text: str):
    """`_since`, `_at`, `start`, `end`: a date, as a naive-UTC range (http.html#history)."""
    try:
        return parse_range(text)
    except ValueError as exc:
        raise bad_request(f"parameter {name}: {exc}", name) from None
