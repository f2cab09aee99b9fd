"""CodeSystem/$lookup (codesystem-operation-lookup.html): a code's display, designations and properties.

Besides the concept's own properties, `parent` and `child` are reported from the hierarchy, and
`inactive` always. `property` inputs limit which properties are returned.
"""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.conformance import code_system
from fhir_server.api.operations.inputs import Inputs, parameters
from fhir_server.fhir.errors import bad_request, not_found
from fhir_server.store.terminology import StoredTerminology

DECLARED = frozenset({"code", "system", "version", "coding", "date", "displayLanguage", "property"})


def lookup(req: FhirRequest, ctx: Context, resource_type: str, id: str | None) -> FhirResponse:
    inputs = Inputs(req, DECLARED, repeating=frozenset({"property"}), unsupported=frozenset({"date"}))
    if ("code" in inputs.names()) == ("coding" in inputs.names()):
        raise bad_request("give code (with system) or coding, one of them", "code")
    coding = inputs.coding("coding") or {"system": inputs.text("system"), "code": inputs.text("code")}
    index = code_system(ctx, StoredTerminology(ctx.repo), inputs, id, coding.get("system"),
                        inputs.text("version"), "system")
    concept = index.get(coding.get("code") or "")
    if concept is None:
        raise not_found(f"{coding.get('code')!r} is not a code of {index.url}")
    wanted = set(inputs.texts("property"))
    properties = [(code, key, value) for code, key, value in concept.typed if code not in ("parent", "child")]
    properties += [("parent", "valueCode", p) for p in index.parents(concept.code)]
    properties += [("child", "valueCode", c) for c in index.children(concept.code)]
    if not any(code == "inactive" for code, _, _ in properties):
        properties.append(("inactive", "valueBoolean", concept.inactive))
    return FhirResponse(200, parameters(
        {"name": "name", "valueString": index.name or index.url},
        {"name": "version", "valueString": index.version},
        {"name": "display", "valueString": concept.display or concept.code},
        {"name": "definition", "valueString": concept.definition} if not wanted or "definition" in wanted else {},
        *({"name": "designation", "part": _designation(d)} for d in concept.designations),
        *({"name": "property", "part": [{"name": "code", "valueCode": code}, {"name": "value", key: value}]}
          for code, key, value in properties if not wanted or code in wanted),
    ), interaction="operation", resource_type="CodeSystem")


def _designation(designation: dict) -> list[dict]:
    parts = []
    if designation.get("language"):
        parts.append({"name": "language", "valueCode": designation["language"]})
    if isinstance(designation.get("use"), dict):
        parts.append({"name": "use", "valueCoding": designation["use"]})
    parts.append({"name": "value", "valueString": designation.get("value")})
    return parts

