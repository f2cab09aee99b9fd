"""A grant's Access applied by the repository (store/access.py), through the HTTP-free router, on SQLite and
PostgreSQL: a `patient/` grant for patient A reaches nothing of patient B by any interaction."""

from __future__ import annotations

import pytest
from conftest import BASE_URL
from http_free import JSON, body, ids, runner

from fhir_server.api.execute import Server, execute
from fhir_server.api.messages import FhirRequest
from fhir_server.auth.scopes import access_for, parse_scopes
from fhir_server.store.access import ALL


@pytest.fixture
def world(client, engine):
    """Two patients, each with a lab and a vital-signs Observation, an Encounter and a Condition; one
    Practitioner both refer to."""
    server = Server(engine, BASE_URL)

    def put(resource: dict) -> None:
        path = f"{resource['resourceType']}/{resource['id']}"
        response = execute(server, FhirRequest("PUT", path, headers=JSON, body=resource), ALL)
        assert response.status in (200, 201), body(response)

    put({"resourceType": "Practitioner", "id": "doc", "name": [{"family": "Osler"}]})
    for p in ("a", "b"):
        put({"resourceType": "Patient", "id": p, "name": [{"family": f"Fam{p}"}],
             "generalPractitioner": [{"reference": "Practitioner/doc"}]})
        put({"resourceType": "Encounter", "id": f"enc-{p}", "status": "finished",
             "class": {"code": "AMB"}, "subject": {"reference": f"Patient/{p}"}})
        put({"resourceType": "Condition", "id": f"cond-{p}", "subject": {"reference": f"Patient/{p}"},
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}})
        for category in ("laboratory", "vital-signs"):
            put({"resourceType": "Observation", "id": f"{category}-{p}", "status": "final",
                 "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                           "code": category}]}],
                 "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                 "subject": {"reference": f"Patient/{p}"}, "encounter": {"reference": f"Encounter/enc-{p}"},
                 "performer": [{"reference": "Practitioner/doc"}]})
    return server


def as_grant(server, scopes: str, patient: str | None = "a"):
    resource_scopes, _ = parse_scopes(scopes)
    access = access_for(resource_scopes, patient=patient)
    return runner(server, access)


PATIENT_A = "patient/*.cruds"


def test_read_reaches_own_compartment_and_shared_types_only(world):
    run = as_grant(world, PATIENT_A)
    assert run("GET", "Patient/a").status == 200
    assert run("GET", "Observation/laboratory-a").status == 200
    assert run("GET", "Practitioner/doc").status == 200  # not in any patient's compartment
    for path in ("Patient/b", "Observation/laboratory-b", "Encounter/enc-b", "Condition/cond-b"):
        response = run("GET", path)
        assert response.status == 404, path  # as if absent: no hint that it exists
    assert run("GET", "Observation/laboratory-b/_history/1").status == 404


def test_search_and_compartment_search_return_own_records(world):
    run = as_grant(world, PATIENT_A)
    assert ids(run("GET", "Observation")) == {"Observation/laboratory-a", "Observation/vital-signs-a"}
    assert ids(run("GET", "Observation", [("subject", "Patient/b")])) == set()
    assert ids(run("GET", "Patient")) == {"Patient/a"}
    assert ids(run("GET", "Patient/b/Observation")) == set()
    assert body(run("GET", "Observation", [("_summary", "count")]))["total"] == 2
    assert ids(run("GET", "", [("_type", "Observation,Condition")])) == {
        "Observation/laboratory-a", "Observation/vital-signs-a", "Condition/cond-a"}


def test_includes_revincludes_chains_and_has_stay_inside(world):
    run = as_grant(world, PATIENT_A)
    found = ids(run("GET", "Practitioner", [("_revinclude", "Observation:performer")]))
    assert found == {"Practitioner/doc", "Observation/laboratory-a", "Observation/vital-signs-a"}
    found = ids(run("GET", "Observation", [("_include", "Observation:subject")]))
    assert "Patient/b" not in found and "Patient/a" in found
    assert ids(run("GET", "Observation", [("subject:Patient.name", "Famb")])) == set()
    assert ids(run("GET", "Practitioner", [("_has:Observation:performer:subject", "Patient/b")])) == set()
    assert ids(run("GET", "Patient", [("_has:Condition:subject:code", "44054006")])) == {"Patient/a"}


def test_history_and_everything(world):
    run = as_grant(world, PATIENT_A)
    assert run("GET", "Observation/laboratory-b/_history").status == 404
    assert ids(run("GET", "Observation/_history")) == {"Observation/laboratory-a", "Observation/vital-signs-a"}
    assert "Patient/b" not in ids(run("GET", "_history"))
    assert run("GET", "Patient/b/$everything").status == 404
    everything = ids(run("GET", "Patient/a/$everything"))
    assert "Observation/laboratory-a" in everything and not any(i.endswith("-b") for i in everything)


def test_writes_stay_inside_the_compartment(world):
    run = as_grant(world, PATIENT_A)
    own = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "Patient/a"}}
    assert run("POST", "Observation", payload=own).status == 201
    other = {**own, "subject": {"reference": "Patient/b"}}
    assert run("POST", "Observation", payload=other).status == 403
    assert run("PUT", "Observation/laboratory-b", payload={**other, "id": "laboratory-b"}).status == 404
    moved = {**other, "id": "laboratory-a"}  # moving A's record to B would hand it out of reach
    assert run("PUT", "Observation/laboratory-a", payload=moved).status == 403
    assert run("DELETE", "Observation/vital-signs-b").status == 404
    unrestricted = as_grant(world, "system/*.cruds", patient=None)
    assert ids(unrestricted("GET", "Observation", [("subject", "Patient/b")])) == {
        "Observation/laboratory-b", "Observation/vital-signs-b"}
    assert body(unrestricted("GET", "Observation/laboratory-a"))["subject"]["reference"] == "Patient/a"


def test_transaction_entries_are_authorised_one_by_one(world):
    run = as_grant(world, PATIENT_A)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "ok"},
                      "subject": {"reference": "Patient/a"}}, "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "no"},
                      "subject": {"reference": "Patient/b"}}, "request": {"method": "POST", "url": "Observation"}},
    ]}
    assert run("POST", "", payload=bundle).status == 403
    system = as_grant(world, "system/Observation.rs", patient=None)
    assert ids(system("GET", "Observation", [("code:text", "ok")])) == set()  # nothing of it was written
    batch = {**bundle, "type": "batch", "entry": [*bundle["entry"],
                                                  {"request": {"method": "GET", "url": "Patient/b"}}]}
    statuses = [e["response"]["status"] for e in body(run("POST", "", payload=batch))["entry"]]
    assert [s.split()[0] for s in statuses] == ["201", "403", "404"]


def test_types_and_interactions_not_granted_are_refused_before_any_query(world):
    run = as_grant(world, "patient/Observation.rs")
    assert run("GET", "Condition/cond-a").status == 403
    assert run("GET", "Condition").status == 403
    assert run("POST", "Observation", payload={"resourceType": "Observation", "status": "final",
                                               "code": {"text": "x"}, "subject": {"reference": "Patient/a"}}
               ).status == 403
    assert run("DELETE", "Observation/laboratory-a").status == 403
    assert ids(run("GET", "", [("_id", "cond-a,laboratory-a")])) == {"Observation/laboratory-a"}


def test_scope_query_narrows_every_interaction(world):
    run = as_grant(world, "patient/Observation.rs?category=laboratory patient/Patient.rs")
    assert ids(run("GET", "Observation")) == {"Observation/laboratory-a"}
    assert run("GET", "Observation/laboratory-a").status == 200
    assert run("GET", "Observation/vital-signs-a").status == 404
    assert ids(run("GET", "Patient/a/$everything")) >= {"Patient/a", "Observation/laboratory-a"}
    assert "Observation/vital-signs-a" not in ids(run("GET", "Patient/a/$everything"))
    two = as_grant(world, "patient/Observation.rs?category=laboratory patient/Observation.rs?category=vital-signs")
    assert ids(two("GET", "Observation")) == {"Observation/laboratory-a", "Observation/vital-signs-a"}


def test_patient_scopes_without_a_patient_grant_nothing(world):
    run = as_grant(world, PATIENT_A, patient=None)
    assert run("GET", "Patient/a").status == 403
