"""Patient/[id]/$care-gaps: the member's open care gaps, with due dates and evidence
(profiles/OperationDefinition-care-gaps.json; the rules are in care/care_gaps.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, parameters
from fhir_server.care.care_gaps import GAP_SYSTEM, Gap, member_gaps


def care_gaps(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    """200 and a Parameters of one `gap` per open gap and a `summary`; 404 for a Patient not on the server."""
    inputs = Inputs(req, frozenset({"asOf"}))
    as_of = inputs.day("asOf") or datetime.now(UTC).date()
    gaps = member_gaps(ctx.repo, id, as_of)
    summary = (f"{len(gaps)} open care gap{'s' if len(gaps) != 1 else ''} on {as_of}: "
               + "; ".join(f"{g.display} ({g.evidence})" for g in gaps)) if gaps else f"no open care gaps on {as_of}"
    answer = parameters(*(_gap(g) for g in gaps), {"name": "summary", "valueString": summary})
    return FhirResponse(200, answer, interaction="operation", resource_type="Patient")


def _gap(gap: Gap) -> dict:
    return {"name": "gap", "part": [
        {"name": "code", "valueCoding": {"system": GAP_SYSTEM, "code": gap.code, "display": gap.display}},
        {"name": "condition", "valueReference": {"reference": gap.condition}},
        {"name": "due", "valueDate": gap.due.isoformat()},
        {"name": "evidence", "valueString": gap.evidence},
        *([{"name": "lastResult", "valueReference": {"reference": gap.last_result}}] if gap.last_result else []),
    ]}
