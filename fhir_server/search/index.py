"""Resource -> typed search index rows, filled at write time (search.html#ptypes, DESIGN.md Storage).

Every SearchParameter of the resource's type is evaluated by its compiled FHIRPath expression, and each
value it selects becomes rows of the table for the parameter's type. A few rows serve modifiers: a token's
display texts are string rows named `code:text`, a reference's identifier is a token row named
`code:identifier`, an identifier's type with its value is a token row named `identifier:of-type`, and a
value with nothing to match on (a CodeableConcept with text only, an identifier-only reference) leaves a
row of empty values so that `:missing` counts it as present. Compartment membership rows follow from the
reference rows and the compartment definitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache

from fhir_server.fhir.definitions import code_systems
from fhir_server.fhir.fhirpath import Node, compile_expression, resource_node, top_level_keys
from fhir_server.fhir.search_parameters import (
    COMPARTMENTS,
    RESOURCE_COLUMNS,
    SearchParameter,
    by_url,
    compartment_params,
    for_type,
)
from fhir_server.search.dates import MAX_DATE, MIN_DATE, parse_range
from fhir_server.search.strings import index_value, normalize

TABLES = ("string", "token", "date", "reference", "number", "quantity", "uri", "composite", "compartment")
_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _items(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _kind(node: Node) -> str | None:
    """The node's FHIR type; guessed from the JSON shape when fhirpathpy chose it."""
    if node.type is not None:
        return node.type
    value = node.value
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if not isinstance(value, dict):
        return None
    if "coding" in value:
        return "CodeableConcept"
    if "reference" in value:
        return "Reference"
    if "family" in value or "given" in value:
        return "HumanName"
    if "start" in value or "end" in value:
        return "Period"
    if "value" in value and ("unit" in value or "code" in value) and not isinstance(value["value"], str):
        return "Quantity"
    if "system" in value and "value" in value:
        return "Identifier"
    if "code" in value:
        return "Coding"
    return None


# -- values by parameter type --------------------------------------------------------------------------------
def string_values(node: Node) -> Iterator[str]:
    kind, value = _kind(node), node.value
    if isinstance(value, str):
        yield value
    elif kind in ("HumanName", "Address") and isinstance(value, dict):
        for part in _NAME_PARTS if kind == "HumanName" else _ADDRESS_PARTS:
            yield from (v for v in _items(value.get(part)) if isinstance(v, str))


def token_values(node: Node) -> Iterator[tuple[str | None, str | None]]:
    """(system, code) pairs (search.html#token)."""
    kind, value = _kind(node), node.value
    if isinstance(value, bool):
        yield None, "true" if value else "false"
    elif isinstance(value, str):
        # A code bound (required) to one CodeSystem is that system's code (search.html#token).
        yield (code_systems().get(node.owner, {}).get(node.path) if kind == "code" and node.owner else None), value
    elif not isinstance(value, dict):
        return
    elif kind == "CodeableConcept":
        for coding in _items(value.get("coding")):
            if isinstance(coding, dict) and (coding.get("code") or coding.get("system")):
                yield coding.get("system"), coding.get("code")
    elif kind == "Identifier" or kind == "Coding":
        code = value.get("value") if kind == "Identifier" else value.get("code")
        if code is not None or value.get("system"):
            yield value.get("system"), code
    elif kind == "ContactPoint":
        if value.get("value"):
            yield None, value["value"]


def token_texts(node: Node) -> Iterator[str]:
    """What `:text` searches: CodeableConcept.text, Coding.display, Identifier.type.text."""
    kind, value = _kind(node), node.value
    if not isinstance(value, dict):
        return
    if kind == "CodeableConcept":
        if isinstance(value.get("text"), str):
            yield value["text"]
        for coding in _items(value.get("coding")):
            if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                yield coding["display"]
    elif kind == "Coding" and isinstance(value.get("display"), str):
        yield value["display"]
    elif kind == "Identifier" and isinstance(value.get("type"), dict) and isinstance(value["type"].get("text"), str):
        yield value["type"]["text"]


def identifier_types(node: Node) -> Iterator[tuple[str | None, str]]:
    """(type system, `type code|value`) for `:of-type` (search.html#token)."""
    value = node.value
    if _kind(node) != "Identifier" or not isinstance(value, dict) or not value.get("value"):
        return
    ident_type = value.get("type")
    for coding in _items(ident_type.get("coding") if isinstance(ident_type, dict) else None):
        if isinstance(coding, dict) and coding.get("code"):
            yield coding.get("system"), f"{coding['code']}|{value['value']}"


def _date_range(text: object) -> tuple[datetime, datetime] | None:
    if not isinstance(text, str):
        return None
    try:
        rng = parse_range(text)
    except ValueError:
        return None
    return rng.start, rng.end


def date_ranges(node: Node) -> Iterator[tuple[datetime, datetime]]:
    kind, value = _kind(node), node.value
    if isinstance(value, str):
        rng = _date_range(value)
        if rng:
            yield rng
    elif kind == "Period" and isinstance(value, dict):
        start, end = _date_range(value.get("start")), _date_range(value.get("end"))
        if start or end:
            yield (start[0] if start else MIN_DATE), (end[1] if end else MAX_DATE)
    elif kind == "Timing" and isinstance(value, dict):
        for event in _items(value.get("event")):
            rng = _date_range(event)
            if rng:
                yield rng
        repeat = value.get("repeat")
        if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
            yield from date_ranges(Node(repeat["boundsPeriod"], "Period"))


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Decimal(value))
        except InvalidOperation:
            return None
    return None


def number_values(node: Node) -> Iterator[tuple[float, float]]:
    """(low, high): a point value has both equal; a Range (or Quantity) is taken by its value(s)."""
    kind, value = _kind(node), node.value
    if isinstance(value, dict):
        if kind == "Range":
            low, high = value.get("low") or {}, value.get("high") or {}
            lo, hi = _number(low.get("value")), _number(high.get("value"))
            if lo is not None or hi is not None:
                yield (lo if lo is not None else float("-inf")), (hi if hi is not None else float("inf"))
            return
        number = _number(value.get("value"))
    else:
        number = _number(value)
    if number is not None:
        yield number, number


def quantity_values(node: Node) -> Iterator[tuple[str | None, str | None, str | None, float, float]]:
    """(system, code, unit, low, high) of a Quantity or Range (search.html#quantity)."""
    kind, value = _kind(node), node.value
    if not isinstance(value, dict):
        return
    units = value
    if kind == "Range":
        units = value.get("low") or value.get("high") or {}
    for low, high in number_values(node):
        yield units.get("system"), units.get("code"), units.get("unit"), low, high


def reference_values(node: Node, base_url: str) -> Iterator[tuple[str | None, str | None, str | None, str | None]]:
    """(target type, target id, url, version) of a Reference, canonical or uri (search.html#reference).

    A literal reference under this server's base counts as the relative reference it names; any other
    absolute URL is another server's resource and keeps only its text, in `url`.
    """
    value = node.value
    if isinstance(value, str):  # canonical or uri; a relative one (`PlanDefinition/x`) names its target too
        url, _, version = value.partition("|")
        parts = url.split("/")
        local = len(parts) == 2 and parts[0][:1].isupper() and "://" not in url
        yield (parts[0] if local else None), (index_value(parts[1]) if local else None), index_value(url), \
            index_value(version or None)
        return
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return
    reference = value["reference"]
    if reference.startswith("#"):
        return  # contained resources are not indexed (search.html#contained is not supported)
    if base_url and reference.startswith(base_url + "/"):
        reference = reference[len(base_url) + 1:]
    if "://" in reference or reference.startswith("urn:"):
        yield None, None, index_value(reference), None  # another server's resource: matched by its URL
        return
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) == 2 and parts[0][:1].isupper():
        yield parts[0], index_value(parts[1]), None, None


def reference_identifiers(node: Node) -> Iterator[tuple[str | None, str | None]]:
    value = node.value
    if isinstance(value, dict) and isinstance(value.get("identifier"), dict):
        ident = value["identifier"]
        if ident.get("value") or ident.get("system"):
            yield ident.get("system"), ident.get("value")


def uri_values(node: Node) -> Iterator[str]:
    if isinstance(node.value, str):
        yield node.value


# -- rows -------------------------------------------------------------------------------------------------
class Rows:
    """Index rows of one resource, by table, ready for executemany."""

    def __init__(self, resource_type: str, id: str) -> None:
        self.key = {"resource_type": resource_type, "id": id}
        self.tables: dict[str, list[dict]] = {t: [] for t in TABLES}
        self._seen: set[tuple] = set()

    def add(self, table: str, **row) -> None:
        marker = (table, *row.values())
        if marker in self._seen:
            return
        self._seen.add(marker)
        self.tables[table].append({**self.key, **row})

    def string(self, param: str, text: str) -> None:
        self.add("string", param=param, value=normalize(text), exact=index_value(text))

    def token(self, param: str, system: str | None, code: str | None) -> None:
        self.add("token", param=param, system=index_value(system), code=index_value(code))


def _index_token(rows: Rows, code: str, nodes: list[Node]) -> None:
    before = len(rows.tables["token"])
    for node in nodes:
        for system, value in token_values(node):
            rows.token(code, system, value)
        for text in token_texts(node):
            rows.string(f"{code}:text", text)
        for system, typed_value in identifier_types(node):
            rows.token(f"{code}:of-type", system, typed_value)
    if not any(r["param"] == code for r in rows.tables["token"][before:]):
        rows.token(code, None, None)  # present, with no code (e.g. text only): not `:missing`


def _index_reference(rows: Rows, code: str, nodes: list[Node], base_url: str) -> None:
    before = len(rows.tables["reference"])
    for node in nodes:
        for target_type, target_id, url, version in reference_values(node, base_url):
            rows.add("reference", param=code, target_type=target_type, target_id=target_id, url=url, version=version)
        for system, value in reference_identifiers(node):
            rows.token(f"{code}:identifier", system, value)
    searchable = any(isinstance(n.value, dict) and (n.value.get("identifier") or n.value.get("reference"))
                     for n in nodes)
    if len(rows.tables["reference"]) == before and searchable:
        # An identifier-only or contained reference is a value, though not a literal one: not `:missing`.
        # A display-only reference gives nothing to search on, and counts as missing.
        rows.add("reference", param=code, target_type=None, target_id=None, url=None, version=None)


def _index_simple(rows: Rows, sp: SearchParameter, nodes: list[Node]) -> None:
    code = sp.code
    if sp.type == "string":
        for node in nodes:
            for text in string_values(node):
                rows.string(code, text)
    elif sp.type == "date":
        for node in nodes:
            for start, end in date_ranges(node):
                rows.add("date", param=code, low=start, high=end)
    elif sp.type == "number":
        for node in nodes:
            for low, high in number_values(node):
                rows.add("number", param=code, low=low, high=high)
    elif sp.type == "quantity":
        for node in nodes:
            for system, unit_code, unit, low, high in quantity_values(node):
                rows.add("quantity", param=code, system=index_value(system), code=index_value(unit_code),
                         unit=index_value(unit), low=low, high=high)
    elif sp.type == "uri":
        for node in nodes:
            for uri in uri_values(node):
                rows.add("uri", param=code, value=index_value(uri))


def composite_parts(sp: SearchParameter) -> tuple[SearchParameter, SearchParameter] | None:
    """The two component parameters of a composite this server indexes: a token, then any simple type."""
    if len(sp.components) != 2:
        return None
    first, second = by_url(sp.components[0].definition), by_url(sp.components[1].definition)
    if first is None or second is None or first.type != "token":
        return None
    if second.type not in ("token", "quantity", "date", "string", "reference", "number", "uri"):
        return None
    return first, second


def _component_rows(sp: SearchParameter, node: Node, base_url: str) -> list[dict]:
    """The second component's values of one element, as composite-table columns."""
    nodes = compile_expression(sp.components[1].expression, node.type or "")([node])
    second = by_url(sp.components[1].definition)
    out: list[dict] = []
    for n in nodes:
        if second.type == "token":
            out += [{"b_system": index_value(s), "b_code": index_value(c)} for s, c in token_values(n)]
        elif second.type == "reference":
            out += [{"b_code": f"{t}/{i}" if t else u} for t, i, u, _ in reference_values(n, base_url)]
        elif second.type in ("quantity", "number"):
            for system, code, unit, low, high in quantity_values(n) if second.type == "quantity" else (
                    (None, None, None, lo, hi) for lo, hi in number_values(n)):
                out.append({"b_system": index_value(system), "b_code": index_value(code),
                            "b_unit": index_value(unit), "b_low": low, "b_high": high})
        elif second.type == "date":
            out += [{"b_start": s, "b_end": e} for s, e in date_ranges(n)]
        elif second.type in ("string", "uri"):
            out += [{"b_text": normalize(t)} for t in (string_values(n) if second.type == "string" else uri_values(n))]
    return out


def _index_composite(rows: Rows, sp: SearchParameter, nodes: list[Node], base_url: str) -> None:
    if composite_parts(sp) is None:
        return
    empty = {"b_system": None, "b_code": None, "b_unit": None, "b_low": None, "b_high": None, "b_start": None,
             "b_end": None, "b_text": None}
    for node in nodes:
        firsts = compile_expression(sp.components[0].expression, node.type or "")([node])
        pairs = [pair for n in firsts for pair in token_values(n)]
        if not pairs:
            continue
        for second in _component_rows(sp, node, base_url):
            for system, code in pairs:
                rows.add("composite", param=sp.code, a_system=index_value(system), a_code=index_value(code),
                         **{**empty, **second})


def indexed_parameters(resource_type: str) -> list[SearchParameter]:
    """The parameters that have index rows for this type."""
    return [sp for code, sp in for_type(resource_type).items()
            if code not in RESOURCE_COLUMNS and sp.expression and sp.type != "special"]


@cache
def _plan(resource_type: str) -> list[tuple[SearchParameter, frozenset[str] | None]]:
    """Each indexed parameter with the top-level keys it needs (None: always evaluate it)."""
    return [(sp, top_level_keys(sp.expression, resource_type)) for sp in indexed_parameters(resource_type)]


def index_rows(resource: dict, resource_type: str, id: str, base_url: str = "") -> dict[str, list[dict]]:
    """Every index row of one resource, by table name."""
    rows = Rows(resource_type, id)
    root = [resource_node(resource)]
    for sp, keys in _plan(resource_type):
        if keys is not None and keys.isdisjoint(resource.keys()):
            continue
        nodes = compile_expression(sp.expression, resource_type)(root)
        if not nodes:
            continue
        if sp.type == "token":
            _index_token(rows, sp.code, nodes)
        elif sp.type == "reference":
            _index_reference(rows, sp.code, nodes, base_url)
        elif sp.type == "composite":
            _index_composite(rows, sp, nodes, base_url)
        else:
            _index_simple(rows, sp, nodes)
    _index_compartments(rows, resource_type, id)
    return rows.tables


def _index_compartments(rows: Rows, resource_type: str, id: str) -> None:
    """Compartment membership (compartmentdefinition.html): a resource is in the compartment of what its
    compartment parameters refer to, and a compartment's owner is in its own compartment."""
    for compartment in COMPARTMENTS:
        if resource_type == compartment:
            rows.add("compartment", compartment_type=compartment, compartment_id=id)
        params = compartment_params(compartment, resource_type)
        if not params:
            continue
        for row in rows.tables["reference"]:
            if row["target_type"] == compartment and row["param"] in params:
                rows.add("compartment", compartment_type=compartment, compartment_id=row["target_id"])
