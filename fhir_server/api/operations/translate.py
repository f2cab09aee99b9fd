"""ConceptMap/$translate (conceptmap-operation-translate.html): the codes a ConceptMap gives for a code.

The map is the instance called on, `conceptMap`, or the stored map with canonical `url`; without any of
them, every stored map with a group from the code's system (to `targetsystem`, when given) is used
(search parameters `source-system` and `target-system`); `source` and `target` keep the maps between those
ValueSets. `reverse` maps target codes back to sources. `dependency` is refused with 422.
"""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.conformance import target
from fhir_server.api.operations.inputs import Inputs, parameters
from fhir_server.fhir.errors import bad_request
from fhir_server.fhir.search_parameters import for_type
from fhir_server.fhir.terminology.conceptmap import Match, mapped, translate
from fhir_server.search.parse import Criterion, SearchQuery
from fhir_server.search.values import UriValue
from fhir_server.store.terminology import StoredTerminology

DECLARED = frozenset({"url", "conceptMap", "conceptMapVersion", "code", "system", "version", "source", "coding",
                      "codeableConcept", "target", "targetsystem", "reverse"})
MAX_MAPS = 100


def translate_operation(req: FhirRequest, ctx: Context, resource_type: str, id: str | None) -> FhirResponse:
    inputs = Inputs(req, DECLARED, unsupported=frozenset({"dependency"}))
    terminology = StoredTerminology(ctx.repo)
    codings = inputs.codings(inputs.text("system"))
    reverse = inputs.boolean("reverse") or False
    target_system = inputs.text("targetsystem")
    if id is not None or {"url", "conceptMap"} & inputs.names():
        maps = [target(ctx, terminology, inputs, "ConceptMap", id, resource="conceptMap", version="conceptMapVersion")]
    else:
        maps = _maps_between(ctx, codings, target_system, reverse)
    maps = [m for m in maps
            if _scoped(m, "source", inputs.text("source")) and _scoped(m, "target", inputs.text("target"))]
    matches: list[Match] = []
    for concept_map in maps:
        for coding in codings:
            matches += translate(concept_map, coding.get("system"), coding["code"], target_system=target_system,
                                 reverse=reverse, other_map=terminology.concept_map)
    result = mapped(matches)
    codes = ", ".join(f"{c.get('system') or '(any system)'}#{c['code']}" for c in codings)
    message = None if result else f"no mapping for {codes}" + (f" to {target_system}" if target_system else "")
    return FhirResponse(200, parameters(
        {"name": "result", "valueBoolean": result},
        {"name": "message", "valueString": message},
        *({"name": "match", "part": _match(m)} for m in matches),
    ), interaction="operation", resource_type="ConceptMap")


def _scoped(concept_map: dict, side: str, value_set: str | None) -> bool:
    """Whether the map's source (or target) ValueSet is `value_set`, when one is asked for."""
    return value_set is None or value_set in (concept_map.get(f"{side}Uri"), concept_map.get(f"{side}Canonical"))


def _maps_between(ctx: Context, codings: list[dict], target_system: str | None, reverse: bool) -> list[dict]:
    """The stored ConceptMaps with a group from the codes' system (to `target_system`, when given)."""
    systems = {c.get("system") for c in codings}
    if None in systems or len(systems) != 1:
        raise bad_request("without url, conceptMap or an instance, the code's system names the maps to use",
                          "system")
    params = for_type("ConceptMap")
    sides = (("target-system", "source-system") if reverse else ("source-system", "target-system"))
    criteria = [Criterion(sides[0], "uri", (UriValue(systems.pop()),), param=params[sides[0]])]
    if target_system:
        criteria.append(Criterion(sides[1], "uri", (UriValue(target_system),), param=params[sides[1]]))
    page = ctx.repo.search(SearchQuery("ConceptMap", tuple(criteria), total="none"), count=MAX_MAPS)
    return [stored.resource() for stored in page.resources]


def _match(match: Match) -> list[dict]:
    concept = {k: v for k, v in (("system", match.system), ("code", match.code), ("display", match.display)) if v}
    parts = [{"name": "equivalence", "valueCode": match.equivalence}]
    if concept:
        parts.append({"name": "concept", "valueCoding": concept})
    if match.source:
        parts.append({"name": "source", "valueUri": match.source})
    return parts
