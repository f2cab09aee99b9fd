"""Patient/[id]/$log-outreach: a coordinator's outreach call
(profiles/OperationDefinition-log-outreach.json; the rules are in care/outreach.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, parameters
from fhir_server.care.outreach import OUTCOMES, PARTIES, OutreachCall, log_call
from fhir_server.fhir.errors import bad_request

DECLARED = frozenset({"party", "outcome", "note", "durationSeconds", "callbackAt", "coordinator", "contact"})


def log_outreach(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, DECLARED)
    party = inputs.text("party")
    if party is None:
        raise bad_request(f"party is required: {', '.join(PARTIES)}", "party")
    outcome = inputs.text("outcome")
    if outcome is None:
        raise bad_request(f"outcome is required: {', '.join(OUTCOMES)}", "outcome")
    call = OutreachCall(party, outcome, inputs.text("note"), inputs.integer("durationSeconds"),
                        inputs.text("callbackAt"), inputs.reference("coordinator"), inputs.reference("contact"))
    logged = log_call(ctx.repo, id, call, ctx.program.outreach_attempts)
    answer = parameters(
        {"name": "communication", "valueReference": {"reference": logged.communication}},
        {"name": "task", "valueReference": {"reference": logged.task}},
        {"name": "communicationRequest", "valueReference": logged.communication_request and {
            "reference": logged.communication_request}},
        {"name": "status", "valueCode": logged.task_status},
        {"name": "attempts", "valueInteger": logged.attempts},
    )
    return FhirResponse(200, answer, interaction="operation", resource_type="Patient")
