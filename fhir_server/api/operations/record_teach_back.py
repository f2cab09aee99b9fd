"""Task/[id]/$record-teach-back: how well the member could explain an education material back, which ends
its review (profiles/OperationDefinition-record-teach-back.json; the rules are in care/teach_back.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, parameters, required
from fhir_server.care.teach_back import OUTCOMES, record
from fhir_server.fhir.errors import bad_request

_INPUTS = frozenset({"outcome", "note", "coordinator"})


def record_teach_back(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, _INPUTS)
    outcome = inputs.text("outcome")
    if outcome is None:
        raise bad_request(f"outcome is required: {', '.join(OUTCOMES)}", "outcome")
    coordinator = required(inputs.reference("coordinator"), "coordinator")
    done = record(ctx.repo, id, outcome, coordinator, inputs.text("note"))
    answer = parameters(
        {"name": "task", "valueReference": {"reference": done.task}},
        {"name": "status", "valueCode": done.status},
        {"name": "observation", "valueReference": {"reference": done.observation}},
        {"name": "communicationRequest", "valueReference": done.communication_request and {
            "reference": done.communication_request}},
        {"name": "followUp", "valueReference": done.follow_up and {"reference": done.follow_up}},
    )
    return FhirResponse(200, answer, interaction="operation", resource_type="Task")
