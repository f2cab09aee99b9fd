"""Patient/[id]/$assign-outreach: give a member to a coordinator to call
(profiles/OperationDefinition-assign-outreach.json; the rules are in care/assignment.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, parameters, required
from fhir_server.care.assignment import assign


def assign_outreach(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, frozenset({"coordinator", "assignedBy"}))
    assigned = assign(ctx.repo, id, required(inputs.reference("coordinator"), "coordinator"),
                      inputs.reference("assignedBy"))
    answer = parameters(
        {"name": "task", "valueReference": {"reference": assigned.task}},
        *([{"name": "previousOwner", "valueReference": {"reference": assigned.previous_owner}}]
          if assigned.previous_owner else []),
    )
    return FhirResponse(200, answer, interaction="operation", resource_type="Patient")
