"""`user/` grants confined by the user's relationship to the patient (store/access.py, Related), through the
HTTP-free router, on SQLite and PostgreSQL: a coordinator reaches the members assigned to them by CareTeam
or EpisodeOfCare, a physician the patients attributed to their practice, by every interaction."""

from __future__ import annotations

import pytest
from conftest import BASE_URL
from http_free import JSON, body, ids, runner

from fhir_server.api.execute import Server, execute
from fhir_server.api.messages import FhirRequest
from fhir_server.auth.scopes import access_for, parse_scopes
from fhir_server.store.access import ALL

PATIENTS = ("a", "b", "c", "d")


def ref(reference: str) -> dict:
    return {"reference": reference}


@pytest.fixture
def world(client, engine):
    """Four patients with an Observation each, a coordinator (nurse) and a physician (doc):

    - a: CareTeam (active) with the nurse's PractitionerRole; generalPractitioner Practitioner/doc;
    - b: EpisodeOfCare (active) managed by the nurse; generalPractitioner the doc's PractitionerRole;
    - c: CareTeam (inactive) and EpisodeOfCare (finished) naming the nurse; generalPractitioner the doc's practice;
    - d: nothing to do with either; generalPractitioner another practice.
    """
    server = Server(engine, BASE_URL)

    def put(resource: dict) -> None:
        path = f"{resource['resourceType']}/{resource['id']}"
        response = execute(server, FhirRequest("PUT", path, headers=JSON, body=resource), ALL)
        assert response.status in (200, 201), body(response)

    for org in ("practice", "elsewhere"):
        put({"resourceType": "Organization", "id": org, "name": org})
    for person in ("nurse", "doc"):
        put({"resourceType": "Practitioner", "id": person, "name": [{"family": person}]})
    put({"resourceType": "PractitionerRole", "id": "nurse-role", "practitioner": ref("Practitioner/nurse")})
    put({"resourceType": "PractitionerRole", "id": "doc-role", "practitioner": ref("Practitioner/doc"),
         "organization": ref("Organization/practice")})
    gp = {"a": "Practitioner/doc", "b": "PractitionerRole/doc-role", "c": "Organization/practice",
          "d": "Organization/elsewhere"}
    for p in PATIENTS:
        put({"resourceType": "Patient", "id": p, "name": [{"family": f"Fam{p}"}], "generalPractitioner": [ref(gp[p])]})
        put({"resourceType": "Observation", "id": f"obs-{p}", "status": "final", "code": {"text": "weight"},
             "subject": ref(f"Patient/{p}"), "performer": [ref("Practitioner/doc")]})
    put({"resourceType": "CareTeam", "id": "team-a", "status": "active", "subject": ref("Patient/a"),
         "participant": [{"member": ref("PractitionerRole/nurse-role")}]})
    put({"resourceType": "EpisodeOfCare", "id": "episode-b", "status": "active", "patient": ref("Patient/b"),
         "careManager": ref("Practitioner/nurse")})
    put({"resourceType": "CareTeam", "id": "team-c", "status": "inactive", "subject": ref("Patient/c"),
         "participant": [{"member": ref("Practitioner/nurse")}]})
    put({"resourceType": "EpisodeOfCare", "id": "episode-c", "status": "finished", "patient": ref("Patient/c"),
         "careManager": ref("Practitioner/nurse")})
    return server


def as_user(server, role: str | None, practitioner: str | None, scopes: str = "user/*.cruds"):
    resource_scopes, _ = parse_scopes(scopes)
    access = access_for(resource_scopes, role=role, practitioner=practitioner)
    return runner(server, access)


def patients_of(response) -> set[str]:
    return {i.removeprefix("Patient/") for i in ids(response) if i.startswith("Patient/")}


@pytest.mark.parametrize(("role", "practitioner", "reached"), [
    ("coordinator", "nurse", {"a", "b"}),
    ("physician", "doc", {"a", "b", "c"}),
    ("admin", None, set(PATIENTS)),
    ("coordinator", None, set()),
    ("physician", "nurse", set()),  # the nurse is no one's general practitioner
])
def test_each_role_reaches_its_related_patients(world, role, practitioner, reached):
    run = as_user(world, role, practitioner)
    assert patients_of(run("GET", "Patient")) == reached
    assert {i.removeprefix("Observation/obs-") for i in ids(run("GET", "Observation"))} == reached
    for p in PATIENTS:
        assert run("GET", f"Patient/{p}").status == (200 if p in reached else 404)
        assert run("GET", f"Observation/obs-{p}/_history/1").status == (200 if p in reached else 404)
    assert run("GET", "Organization/elsewhere").status == 200  # no patient's record


def test_a_coordinator_sees_nothing_of_unassigned_members_by_any_interaction(world):
    run = as_user(world, "coordinator", "nurse")
    assert patients_of(run("GET", "Observation", [("_include", "Observation:subject")])) == {"a", "b"}
    assert ids(run("GET", "Patient", [("_revinclude", "Observation:subject")])) == {
        "Patient/a", "Patient/b", "Observation/obs-a", "Observation/obs-b"}
    assert patients_of(run("GET", "Patient", [("_has:Observation:subject:code:text", "weight")])) == {"a", "b"}
    assert ids(run("GET", "Observation", [("subject:Patient.name", "Famd")])) == set()
    assert ids(run("GET", "Observation", [("subject:Patient.name", "Fama")])) == {"Observation/obs-a"}
    assert "Patient/d" not in ids(run("GET", "_history"))
    assert run("GET", "Patient/d/_history").status == 404
    assert run("GET", "Patient/d/$everything").status == 404
    assert ids(run("GET", "Patient/a/$everything")) >= {"Patient/a", "Observation/obs-a"}
    assert ids(run("GET", "Patient/d/Observation")) == set()
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/a"}}, {"request": {"method": "GET", "url": "Patient/d"}}]}
    statuses = [e["response"]["status"] for e in body(run("POST", "", payload=batch))["entry"]]
    assert statuses[0].startswith("200") and statuses[1].startswith("404")


def test_a_coordinators_writes_stay_with_assigned_members(world):
    run = as_user(world, "coordinator", "nurse")
    note = {"resourceType": "Observation", "status": "final", "code": {"text": "call"}, "subject": ref("Patient/b")}
    assert run("POST", "Observation", payload=note).status == 201
    assert run("POST", "Observation", payload={**note, "subject": ref("Patient/d")}).status == 403
    moved = {**note, "id": "obs-a", "subject": ref("Patient/d")}
    assert run("PUT", "Observation/obs-a", payload=moved).status == 403
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": note, "request": {"method": "POST", "url": "Observation"}},
        {"resource": {**note, "subject": ref("Patient/d")}, "request": {"method": "POST", "url": "Observation"}}]}
    assert run("POST", "", payload=transaction).status == 403
    assert ids(as_user(world, "admin", None)("GET", "Observation", [("subject", "Patient/d")])) == {
        "Observation/obs-d"}  # the refused transaction left nothing behind


def test_an_assignment_counts_at_once_and_its_end_too(world):
    run = as_user(world, "coordinator", "nurse")
    assert run("GET", "Patient/d").status == 404
    episode = {"resourceType": "EpisodeOfCare", "id": "episode-d", "status": "active", "patient": ref("Patient/d"),
               "careManager": ref("Practitioner/nurse")}
    admin = as_user(world, "admin", None)
    assert admin("PUT", "EpisodeOfCare/episode-d", payload=episode).status == 201
    assert run("GET", "Patient/d").status == 200  # the same grant: relationships are read when a query runs
    assert admin("PUT", "EpisodeOfCare/episode-d", payload={**episode, "status": "finished"}).status == 200
    assert run("GET", "Patient/d").status == 404


def test_the_audit_log_needs_its_own_scope_and_an_administrator(world):
    assert as_user(world, "coordinator", "nurse", "user/*.rs")("GET", "AuditEvent").status == 403
    assert as_user(world, "admin", None, "user/*.rs")("GET", "AuditEvent").status == 403
    assert as_user(world, "admin", None, "user/AuditEvent.rs")("GET", "AuditEvent").status == 200
