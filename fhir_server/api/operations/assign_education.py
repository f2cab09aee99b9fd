"""Patient/[id]/$assign-education: give a member education materials to read
(profiles/OperationDefinition-assign-education.json; the rules are in care/education.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, parameters, required
from fhir_server.care.education import assign

_INPUTS = frozenset({"material", "coordinator", "due", "medium"})


def assign_education(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, _INPUTS, repeating=frozenset({"material"}))
    coordinator = required(inputs.reference("coordinator"), "coordinator")
    assigned = assign(ctx.repo, id, inputs.texts("material"), coordinator, inputs.day("due"), inputs.text("medium"))
    answer = parameters(*({"name": "assignment", "part": [
        {"name": "material", "valueString": a.material},
        {"name": "documentReference", "valueReference": {"reference": a.document_reference}},
        {"name": "task", "valueReference": {"reference": a.task}},
        {"name": "communicationRequest", "valueReference": {"reference": a.communication_request}}]}
        for a in assigned))
    return FhirResponse(200, answer, interaction="operation", resource_type="Patient")
