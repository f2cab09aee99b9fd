"""Patient/[id]/$medication-review: the member's reconciled medicines and the issues found in them
(profiles/OperationDefinition-medication-review.json; the checks are in care/medreview.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs, parameters
from fhir_server.care.medreview import RXNORM, review

_INPUTS = frozenset({"persist"})


def medication_review(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, _INPUTS)
    done = review(ctx.repo, id, inputs.boolean("persist") is True)
    medicines = [{"name": "medication", "part": [
        {"name": "ingredient", "valueCodeableConcept": _ingredient(m.ingredient)},
        *({"name": "source", "valueReference": {"reference": s}} for s in m.sources)]}
        for m in sorted(done.medicines.values(), key=lambda m: m.ingredient["name"])]
    unmapped = [{"name": "unmapped", "part": [{"name": "source", "valueReference": {"reference": source}},
                                              {"name": "medication", "valueString": text}]}
                for source, text in done.unmapped]
    issues = [{"name": "issue", "resource": issue} for issue in done.issues]
    answer = parameters(*medicines, *unmapped, *issues, {"name": "summary", "valueString": done.summary()})
    return FhirResponse(200, answer, interaction="operation", resource_type="Patient")


def _ingredient(ingredient: dict) -> dict:
    """The ingredient as RxNorm (TTY=IN), or by name alone where we know no RxCUI for it."""
    coding = [{"system": RXNORM, "code": ingredient["rxcui"], "display": ingredient["name"]}] \
        if ingredient["rxcui"] else []
    return {**({"coding": coding} if coding else {}), "text": ingredient["name"]}
