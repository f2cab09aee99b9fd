"""ValueSet/$expand (valueset-operation-expand.html): the codes of a ValueSet, as the ValueSet with an
`expansion`, from the CodeSystems and ValueSets stored on this server.

`filter` keeps the codes whose display has a word starting with each of its words (or whose code starts
with it); `activeOnly` drops inactive codes; `offset` and `count` page the (filtered) expansion, whose
`total` counts it all. The expansion is flat: `excludeNested` is accepted and changes nothing, as are
`excludeNotForUI`, `excludePostCoordinated`, `displayLanguage` and `designation` (displays come in the
CodeSystem's language). Inputs that would change which codes come back (`date`, `context`, the
system-version ones) are refused with 422.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.conformance import target
from fhir_server.api.operations.inputs import Inputs
from fhir_server.fhir.terminology.valueset import Member, expand, text_matches
from fhir_server.search.dates import format_instant
from fhir_server.store.terminology import StoredTerminology

DECLARED = frozenset({"url", "valueSet", "valueSetVersion", "filter", "count", "offset", "activeOnly",
                      "includeDesignations", "includeDefinition", "excludeNested", "excludeNotForUI",
                      "excludePostCoordinated", "displayLanguage", "designation"})
# Inputs of the definition that would change which codes come back; refused rather than ignored.
UNSUPPORTED = frozenset({"context", "contextDirection", "date", "exclude-system", "system-version",
                         "check-system-version", "force-system-version"})


def expand_operation(req: FhirRequest, ctx: Context, resource_type: str, id: str | None) -> FhirResponse:
    inputs = Inputs(req, DECLARED, repeating=frozenset({"designation"}), unsupported=UNSUPPORTED)
    terminology = StoredTerminology(ctx.repo)
    value_set = target(ctx, terminology, inputs, "ValueSet", id, resource="valueSet", version="valueSetVersion")
    active_only = inputs.boolean("activeOnly") or False
    given_offset, count = inputs.integer("offset"), inputs.integer("count")
    offset = given_offset or 0
    text = inputs.text("filter")
    designations, definitions = inputs.boolean("includeDesignations"), inputs.boolean("includeDefinition")
    expansion = expand(value_set, terminology, active_only=active_only)
    members = expansion.members
    if text:
        matches = text_matches(text)
        members = [m for m in members if matches(m)]
    page = members[offset:] if count is None else members[offset:offset + count]
    echoed = [("filter", "valueString", text), ("offset", "valueInteger", given_offset),
              ("count", "valueInteger", count), ("activeOnly", "valueBoolean", inputs.boolean("activeOnly"))]
    parameters = [{"name": n, key: v} for n, key, v in echoed if v is not None]
    parameters += [{"name": "used-codesystem", "valueUri": s} for s in expansion.code_systems]
    parameters += [{"name": "used-valueset", "valueUri": s} for s in expansion.value_sets]
    answer = {k: v for k, v in value_set.items() if k not in ("text", "expansion", "meta")}
    answer["expansion"] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": format_instant(datetime.now(UTC).replace(tzinfo=None)),
        "total": len(members),
        **({"offset": offset} if given_offset is not None else {}),
        **({"parameter": parameters} if parameters else {}),
        **({"contains": [_contains(m, bool(designations), bool(definitions)) for m in page]} if page else {}),
    }
    return FhirResponse(200, answer, interaction="operation", resource_type="ValueSet")


def _contains(member: Member, designations: bool, definitions: bool) -> dict:
    item: dict = {"system": member.system}
    if member.version:
        item["version"] = member.version
    item["code"] = member.code
    if member.display is not None:
        item["display"] = member.display
    if member.abstract:
        item["abstract"] = True
    if member.inactive:
        item["inactive"] = True
    if designations and member.designations:
        item["designation"] = list(member.designations)
    if definitions and member.definition:
        # R4 has no element for it; the R5 extension is the usual carrier (valueset-concept-definition).
        item["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/valueset-concept-definition",
                              "valueString": member.definition}]
    return item
