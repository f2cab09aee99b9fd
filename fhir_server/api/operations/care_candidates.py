"""Patient/$care-candidates: the members who qualify for the program, ranked
(profiles/OperationDefinition-care-candidates.json; the rules are in care/candidates.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, parameters
from fhir_server.care.candidates import REASON_SYSTEM, Candidate, find_candidates, load_rules
from fhir_server.fhir.errors import bad_request

DECLARED = frozenset({"practice", "count", "asOf"})
DEFAULT_COUNT = 50
MAX_COUNT = 1000


def care_candidates(req: FhirRequest, ctx: Context, resource_type: str, id: str | None) -> FhirResponse:
    inputs = Inputs(req, DECLARED)
    count = inputs.integer("count")
    if count is None:
        count = DEFAULT_COUNT
    elif count > MAX_COUNT:
        raise bad_request(f"count is at most {MAX_COUNT}, not {count}", "count")
    as_of = inputs.day("asOf") or datetime.now(UTC).date()
    ranking = find_candidates(ctx.repo, load_rules(ctx.program.candidate_rules), as_of, inputs.reference("practice"),
                              count)
    answer = parameters({"name": "total", "valueInteger": ranking.qualified},
                        *(_candidate(c, rank) for rank, c in enumerate(ranking.candidates, start=1)))
    return FhirResponse(200, answer, interaction="operation", resource_type="Patient")



def _candidate(candidate: Candidate, rank: int) -> dict:
    patient = {"reference": candidate.patient, **({"display": candidate.name} if candidate.name else {})}
    return {"name": "candidate", "part": [
        {"name": "patient", "valueReference": patient},
        {"name": "score", "valueDecimal": candidate.score},
        {"name": "rank", "valueInteger": rank},
        *({"name": "reason", "valueCodeableConcept": {
            "coding": [{"system": REASON_SYSTEM, "code": r.code, "display": r.display}], "text": r.text}}
          for r in candidate.reasons),
    ]}
