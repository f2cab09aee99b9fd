"""The referral Task's state machine (care/referrals.py) over HTTP, on SQLite and PostgreSQL: every
move the loop allows, by PUT, PATCH and in a transaction; every other move a 409 naming both statuses,
with nothing written; other Tasks move freely."""

from __future__ import annotations

import pytest
from fhirjson import FHIR_JSON
from program_world import BASE

BSER = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
STATUSES = ("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress",
            "on-hold", "failed", "completed", "entered-in-error")
ALLOWED = {
    ("draft", "requested"), ("requested", "received"), ("requested", "accepted"), ("requested", "rejected"),
    ("received", "accepted"), ("received", "rejected"), ("accepted", "in-progress"), ("ready", "in-progress"),
    ("in-progress", "on-hold"), ("on-hold", "in-progress"), ("in-progress", "completed"), ("in-progress", "failed"),
    ("on-hold", "completed"), ("on-hold", "failed"),
    *((s, "cancelled") for s in ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")),
    *((s, "entered-in-error") for s in STATUSES), *((s, s) for s in STATUSES),
}


def _task(status: str, *, claimed: bool = True, code: str = "fulfill") -> dict:
    claim = {"meta": {"profile": [BASE + "StructureDefinition/cw-referral-task"]}} if claimed else {}
    return {"resourceType": "Task", "id": "referral", **claim, "status": status, "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": code}]},
            "focus": {"reference": "ServiceRequest/cardiology"}, "for": {"reference": "Patient/ann"},
            "authoredOn": "2026-11-20T10:00:00Z", "requester": {"reference": "Practitioner/rn"}}


def _put(client, task: dict):
    return client.put("/fhir/Task/referral", json=task, headers=FHIR_JSON)


@pytest.mark.parametrize(("before", "after"), [(b, a) for b in STATUSES for a in STATUSES])
def test_each_move(client, before, after):
    assert _put(client, _task(before, claimed=False)).status_code == 201  # any status to begin with
    response = _put(client, _task(after, claimed=False))
    if (before, after) in ALLOWED:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 409, response.text
        issue = response.json()["issue"][0]
        assert issue["expression"] == ["Task.status"]
        assert f"is {before} cannot become {after}" in issue["diagnostics"]
        assert client.get("/fhir/Task/referral").json()["status"] == before


def test_the_whole_loop_by_patch_with_the_business_status(client):
    assert _put(client, _task("requested")).status_code == 201
    for status, business in (("accepted", "3.0"), ("in-progress", "5.1.1"), ("on-hold", "5.1.1"),
                             ("in-progress", "5.1.1"), ("completed", "6.0")):
        response = client.patch("/fhir/Task/referral", json=[
            {"op": "replace", "path": "/status", "value": status},
            {"op": "add", "path": "/businessStatus", "value": {"coding": [{"system": BSER, "code": business}]}}],
            headers={"Content-Type": "application/json-patch+json"})
        assert response.status_code == 200, response.text
    skipped = client.patch("/fhir/Task/referral", json=[{"op": "replace", "path": "/status", "value": "requested"}],
                           headers={"Content-Type": "application/json-patch+json"})
    assert skipped.status_code == 409
    assert len(client.get("/fhir/Task/referral/_history").json()["entry"]) == 6


def test_a_transaction_with_an_illegal_move_writes_nothing(client):
    assert _put(client, _task("requested")).status_code == 201
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "other"}, "request": {"method": "PUT", "url": "Patient/other"}},
        {"resource": _task("completed"), "request": {"method": "PUT", "url": "Task/referral"}}]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 409, response.text
    assert client.get("/fhir/Patient/other").status_code == 404


def test_a_task_that_fulfils_a_referral_is_held_to_it_even_unclaimed_and_others_are_not(client):
    assert _put(client, _task("completed", claimed=False)).status_code == 201
    assert _put(client, _task("requested", claimed=False)).status_code == 409
    other = _task("completed", claimed=False, code="approve")
    assert _put(client, other).status_code == 200  # not a referral Task: no state machine
    assert _put(client, other | {"status": "requested"}).status_code == 200
