"""Arbitrary inputs to the program's newer operations never crash the server or half-write: each answer is a
success or a 4xx OperationOutcome, and a refused call that would write leaves the store as it was."""

from __future__ import annotations

import os

from fhirjson import FHIR_JSON
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from program_world import load

NAMES = st.sampled_from(["periodStart", "periodEnd", "reportType", "subject", "practice", "practitioner", "format",
                         "material", "coordinator", "assignedBy", "due", "medium", "outcome", "note", "measure", "x"])
TEXTS = st.one_of(st.text(max_size=12), st.sampled_from([
    "2026", "2026-02", "2026-02-30", "2026-12-31", "subject", "population", "subject-list", "individual",
    "Patient/ann", "Patient/nobody", "Group/none", "Organization/in-program", "Practitioner/rn", "pdf", "html",
    "document", "diabetes", "heart-failure", "mail", "understood", "not-understood", "declined"]))
VALUES = st.one_of(
    st.builds(lambda t: {"valueString": t}, TEXTS), st.builds(lambda t: {"valueCode": t}, TEXTS),
    st.builds(lambda t: {"valueDate": t}, TEXTS), st.builds(lambda t: {"valueReference": {"reference": t}}, TEXTS),
    st.builds(lambda n: {"valueInteger": n}, st.integers()), st.just({"valueBoolean": True}), st.just({}))
PARAMETERS = st.lists(st.builds(lambda name, value: {"name": name, **value}, NAMES, VALUES), max_size=5).map(
    lambda parts: {"resourceType": "Parameters", "parameter": parts})
CALLS = st.sampled_from(["Measure/cms122/$evaluate-measure", "Measure/cw-outreach/$evaluate-measure",
                         "Patient/ann/$pcp-report", "Patient/ann/$assign-education", "Patient/dee/$assign-outreach",
                         "Task/none/$record-teach-back"])
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _versions(client) -> int:
    return len(client.get("/fhir/_history", params={"_count": 1000}).json().get("entry", []))


@FUZZ
@given(call=CALLS, body=PARAMETERS)
def test_program_operations_with_arbitrary_inputs(client, call, body):
    load(client)
    before = _versions(client)
    response = client.post(f"/fhir/{call}", json=body, headers=FHIR_JSON)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"
        assert _versions(client) == before
