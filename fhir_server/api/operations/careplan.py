"""CarePlan/[id]/$quality-check, $activate, $review and $close: the care plan's documentation standard
and the steps of its life (profiles/OperationDefinition-quality-check.json, -activate.json, -review.json
and -close.json; the rules are in care/careplan.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, required
from fhir_server.care import careplan
from fhir_server.fhir.errors import Issue, operation_outcome


def quality_check(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    """200 and an OperationOutcome of the plan's findings, as $validate answers (no finding: information)."""
    inputs = Inputs(req, frozenset({"asOf"}))
    findings = careplan.quality_check(ctx.repo, id, careplan.as_of_date(inputs.text("asOf")))
    if not findings:
        findings = [Issue("informational", "the care plan meets the documentation standard", "information")]
    return FhirResponse(200, operation_outcome(findings), interaction="operation", resource_type="OperationOutcome")


def activate(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, frozenset({"approvedBy"}))
    return _plan(careplan.activate(ctx.repo, id, required(inputs.reference("approvedBy"), "approvedBy")))


def review(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, frozenset({"reviewedBy", "note"}))
    return _plan(careplan.review(ctx.repo, id, required(inputs.reference("reviewedBy"), "reviewedBy"),
                                 inputs.text("note")))


def close(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, frozenset({"closedBy", "reason"}))
    return _plan(careplan.close(ctx.repo, id, required(inputs.reference("closedBy"), "closedBy"),
                                required(inputs.text("reason"), "reason")))


def _plan(resource: dict) -> FhirResponse:
    return FhirResponse(200, resource, interaction="operation", resource_type="CarePlan")
