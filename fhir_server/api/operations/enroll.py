"""Patient/[id]/$enroll and Patient/[id]/$disenroll: a member joins or leaves the program
(profiles/OperationDefinition-enroll.json and -disenroll.json; the rules are in care/enrollment.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, parameters, required
from fhir_server.care.enrollment import disenroll, enroll

_ENROLL = frozenset({"coordinator", "pcp", "agreement", "agreementDate", "script"})
_DISENROLL = frozenset({"reason", "text"})


def enroll_operation(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, _ENROLL)
    coordinator = required(inputs.reference("coordinator"), "coordinator")
    pcp = required(inputs.reference("pcp"), "pcp")
    written = enroll(ctx.repo, id, coordinator, pcp, inputs.boolean("agreement"), inputs.text("agreementDate"),
                     inputs.reference("script"))
    answer = parameters(*({"name": name, "valueReference": {"reference": ref}} for name, ref in written.items()))
    return FhirResponse(200, answer, interaction="operation", resource_type="Patient")


def disenroll_operation(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, _DISENROLL)
    closed = disenroll(ctx.repo, id, required(inputs.text("reason"), "reason"), inputs.text("text"))
    answer = parameters(*({"name": name, "valueReference": {"reference": ref}}
                          for name, refs in closed.items() for ref in refs))
    return FhirResponse(200, answer, interaction="operation", resource_type="Patient")
