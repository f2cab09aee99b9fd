"""The audit trail over HTTP (api/audit.py, store/audit.py), in open mode, on SQLite and PostgreSQL: an
AuditEvent for every read, search, write and operation, and for each applied entry of a batch; the log is
searchable by its parameters and append-only."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

JSON = {"Content-Type": "application/fhir+json"}


def put(client, resource: dict) -> None:
    response = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=JSON)
    assert response.status_code in (200, 201), response.text


@pytest.fixture
def world(client):
    put(client, {"resourceType": "Patient", "id": "p1", "name": [{"family": "Audit"}]})
    put(client, {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "weight"},
                 "subject": {"reference": "Patient/p1"}})
    return client


def events(client, **params) -> list[dict]:
    """The log's events, less those of the test's own searches of the log (which are audited too)."""
    response = client.get("/fhir/AuditEvent", params={"_count": "200", **params})
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", []) if not reads_the_log(e["resource"])]


def reads_the_log(event: dict) -> bool:
    return any(x.get("description", "").startswith("GET AuditEvent") for x in event.get("entity", []))


def summary(event: dict) -> tuple:
    """(interaction, action, outcome, patient, entity) of an event."""
    whats = [e["what"]["reference"] for e in event.get("entity", []) if "what" in e]
    patient = next((w for e, w in zip(event.get("entity", []), whats, strict=False)
                    if e.get("role", {}).get("code") == "1"), None)
    touched = next((e["what"]["reference"] for e in event.get("entity", [])
                    if "what" in e and e.get("role", {}).get("code") != "1"), None)
    return event["subtype"][0]["code"], event["action"], event["outcome"], patient, touched


def test_each_interaction_is_recorded_with_its_patient(world):
    client = world
    assert client.get("/fhir/Observation/o1").status_code == 200
    assert client.get("/fhir/Observation/o1/_history/1").status_code == 200
    assert client.get("/fhir/Observation", params={"subject": "Patient/p1"}).status_code == 200
    assert client.get("/fhir/Patient/p1/$everything").status_code == 200
    assert client.get("/fhir/Patient/p1/_history").status_code == 200
    assert client.patch("/fhir/Observation/o1", json=[{"op": "replace", "path": "/status", "value": "amended"}],
                        headers={"Content-Type": "application/json-patch+json"}).status_code == 200
    assert client.get("/fhir/Observation/nope").status_code == 404
    assert client.delete("/fhir/Observation/o1").status_code in (200, 204)
    recorded = [summary(e) for e in events(client, _sort="date")]
    assert recorded == [
        ("update", "U", "0", "Patient/p1", "Patient/p1/_history/1"),
        ("update", "U", "0", "Patient/p1", "Observation/o1/_history/1"),
        ("read", "R", "0", "Patient/p1", "Observation/o1/_history/1"),
        ("vread", "R", "0", "Patient/p1", "Observation/o1/_history/1"),
        ("search-type", "E", "0", "Patient/p1", None),
        ("operation", "E", "0", "Patient/p1", "Patient/p1"),
        ("history-instance", "R", "0", "Patient/p1", "Patient/p1"),
        ("patch", "U", "0", "Patient/p1", "Observation/o1/_history/2"),
        ("read", "R", "4", None, "Observation/nope"),
        ("delete", "D", "0", "Patient/p1", "Observation/o1"),
    ]
    search = next(e for e in events(client, subtype="search-type"))
    query = next(x for x in search["entity"] if "query" in x)
    assert base64.b64decode(query["query"]).decode() == "subject=Patient%2Fp1"
    assert search["agent"][0]["requestor"] is True and search["source"]["site"] == "http://testserver/fhir"


def test_metadata_is_not_recorded_and_secrets_in_a_query_are_left_out(client):
    assert client.get("/fhir/metadata").status_code == 200
    assert client.get("/fhir/Patient", params={"name": "x", "access_token": "s3cr3t-token"}).status_code == 200
    (search,) = events(client)
    query = next(x for x in search["entity"] if "query" in x)
    assert base64.b64decode(query["query"]).decode() == "name=x"
    assert "s3cr3t" not in str(search)


def test_batch_entries_are_recorded_one_by_one_and_a_failed_transaction_once(world):
    client = world
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/p1"}},
        {"request": {"method": "GET", "url": "Observation/missing"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "bp"},
                      "subject": {"reference": "Patient/p1"}}, "request": {"method": "POST", "url": "Observation"}}]}
    assert client.post("/fhir", json=batch, headers=JSON).status_code == 200
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Never"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "DELETE", "url": "Observation/o1"}, "ifMatch": 'W/"9"'},
        {"request": {"method": "GET", "url": "Nope/1"}}]}
    assert client.post("/fhir", json=transaction, headers=JSON).status_code >= 400
    recorded = [summary(e) for e in events(client, _sort="date")][2:]
    created = recorded[2][4]
    assert created.startswith("Observation/") and created.endswith("/_history/1")
    assert recorded[:4] == [("read", "R", "0", "Patient/p1", "Patient/p1/_history/1"),
                            ("read", "R", "4", None, "Observation/missing"),
                            ("create", "C", "0", "Patient/p1", created),
                            ("batch", "E", "0", None, None)]
    assert [r[:3] for r in recorded[4:]] == [("transaction", "E", "4")]  # nothing of it was applied


def test_the_log_is_searched_by_its_parameters_and_paged(world):
    client = world
    for _ in range(3):
        client.get("/fhir/Observation/o1")
    client.get("/fhir/Patient/p1")
    assert len(events(client, entity="Observation/o1", action="R")) == 3
    assert len(events(client, patient="p1")) == 6
    assert len(events(client, patient="Patient/p1", subtype="read")) == 4
    assert events(client, outcome="4") == []
    first = events(client, _sort="date")[0]["recorded"]
    assert len(events(client, date=f"ge{first}")) == 6 and events(client, date=f"lt{first}") == []
    assert events(client, date="le2000-01-01") == [] and len(events(client, date="ge2000")) == 6
    page = client.get("/fhir/AuditEvent", params={"_count": "3", "_total": "accurate", "subtype": "read"}).json()
    assert page["total"] == 4 and len(page["entry"]) == 3
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = client.get("/fhir/AuditEvent", params=parse_qs(urlsplit(following).query)).json()
    seen = [e["resource"]["id"] for e in page["entry"] + rest["entry"]]
    assert len(seen) == len(set(seen)) == 4 and "next" not in {link["relation"] for link in rest["link"]}
    newest_first = [e["resource"]["recorded"] for e in page["entry"] + rest["entry"]]
    assert newest_first == sorted(newest_first, reverse=True)
    one = page["entry"][0]["resource"]
    assert client.get(f"/fhir/AuditEvent/{one['id']}").json() == one
    assert client.get(f"/fhir/AuditEvent/{one['id']}/_history/1").json() == one
    assert client.get(f"/fhir/AuditEvent/{one['id']}/_history/2").status_code == 404


@pytest.mark.parametrize(("params", "named"), [
    ({"address": "1.2.3.4"}, "address"), ({"entity:missing": "true"}, "entity"), ({"_sort": "subtype"}, "_sort"),
    ({"_include": "AuditEvent:agent"}, "_include"), ({"date": "2026-13-40"}, "date"),
    ({"_cursor": "garbage"}, "_cursor")])
def test_searches_the_log_cannot_answer_are_400_naming_the_parameter(client, params, named):
    response = client.get("/fhir/AuditEvent", params=params)
    assert response.status_code == 400, response.text
    assert named in str(response.json()["issue"])


def test_the_log_is_append_only_but_takes_client_recorded_events(world):
    client = world
    client.get("/fhir/Patient/p1")
    (read,) = events(client, subtype="read")
    assert client.put(f"/fhir/AuditEvent/{read['id']}", json=read, headers=JSON).status_code == 405
    assert client.delete(f"/fhir/AuditEvent/{read['id']}").status_code == 405
    assert client.patch(f"/fhir/AuditEvent/{read['id']}", json=[{"op": "remove", "path": "/agent"}],
                        headers={"Content-Type": "application/json-patch+json"}).status_code == 405
    assert client.get(f"/fhir/AuditEvent/{read['id']}/_history").status_code == 405
    assert client.delete("/fhir/AuditEvent", params={"_id": read["id"]}).status_code == 405
    theirs = {"resourceType": "AuditEvent", "id": "ignored", "type": {"code": "110110"}, "action": "R",
              "recorded": "2026-11-27T10:00:00Z", "agent": [{"who": {"reference": "Practitioner/ehr-user"},
                                                              "requestor": True}],
              "source": {"observer": {"display": "An EHR"}},
              "entity": [{"what": {"reference": "Patient/p1"}, "role": {"code": "1"}}]}
    created = client.post("/fhir/AuditEvent", json=theirs, headers=JSON)
    assert created.status_code == 201, created.text
    new_id = created.json()["id"]
    assert new_id != "ignored"
    assert [e["id"] for e in events(client, agent="Practitioner/ehr-user")] == [new_id]
    assert client.post("/fhir/AuditEvent", json=theirs, headers={**JSON, "If-None-Exist": "_id=x"}).status_code == 400
    assert client.post("/fhir/AuditEvent", json={**theirs, "recorded": "yesterday"}, headers=JSON).status_code == 400
