"""Organization/[id]/$participation: a practice's decision to take part in the program
(profiles/OperationDefinition-participation.json; the rules are in care/participation.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, required
from fhir_server.care.participation import record_participation

DECLARED = frozenset({"status", "note", "contact"})


def participation(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, DECLARED)
    status = required(inputs.text("status"), "status")
    organization = record_participation(ctx.repo, id, status, inputs.text("note"), inputs.reference("contact"))
    return FhirResponse(200, organization, interaction="operation", resource_type="Organization")
