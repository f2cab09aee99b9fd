"""Transactions and batches (http.html#transaction, bundle.html#transaction)."""

from __future__ import annotations

import base64
import json

from fhirjson import FHIR_JSON, outcome_codes
from sqlalchemy import text

from fhir_server.store.tables import ALL_TABLES


def post_bundle(client, bundle, headers=None):
    return client.post("/fhir", json=bundle, headers={**FHIR_JSON, **(headers or {})})


def tx(*entries, kind="transaction"):
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(full_url, resource):
    return {"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def test_transaction_rewrites_urn_uuid_references(client):
    bundle = tx(
        post("urn:uuid:11111111-1111-1111-1111-111111111111", {"resourceType": "Patient", "gender": "male"}),
        post("urn:uuid:22222222-2222-2222-2222-222222222222", {
            "resourceType": "Observation", "status": "final", "code": {"text": "weight"},
            "subject": {"reference": "urn:uuid:11111111-1111-1111-1111-111111111111"}}),
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    patient_loc, obs_loc = (e["response"]["location"] for e in body["entry"])
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created", "201 Created"]
    patient_id = patient_loc.split("/")[1]
    observation = client.get("/fhir/" + obs_loc.rsplit("/_history", 1)[0]).json()
    assert observation["subject"]["reference"] == f"Patient/{patient_id}"


def test_transaction_resolves_urn_oid_and_put_fullurls(client):
    bundle = tx(
        {"fullUrl": "urn:oid:1.2.3.4", "resource": {"resourceType": "Organization", "id": "org-1", "name": "Clinic"},
         "request": {"method": "PUT", "url": "Organization/org-1"}},
        post("urn:uuid:33333333-3333-3333-3333-333333333333", {
            "resourceType": "Patient", "managingOrganization": {"reference": "urn:oid:1.2.3.4"}}),
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    patient_loc = response.json()["entry"][1]["response"]["location"]
    patient = client.get("/fhir/" + patient_loc.rsplit("/_history", 1)[0]).json()
    assert patient["managingOrganization"]["reference"] == "Organization/org-1"


def test_transaction_processing_order_delete_post_put_get(client):
    client.put("/fhir/Patient/old", json={"resourceType": "Patient", "id": "old"}, headers=FHIR_JSON)
    bundle = tx(
        {"request": {"method": "GET", "url": "Patient/keep"}},
        {"resource": {"resourceType": "Patient", "id": "keep", "gender": "other"},
         "request": {"method": "PUT", "url": "Patient/keep"}},
        {"request": {"method": "DELETE", "url": "Patient/old"}},
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"  # the GET ran after the PUT
    assert entries[0]["resource"]["gender"] == "other"
    assert entries[1]["response"]["status"] == "201 Created"
    assert entries[2]["response"]["status"].startswith("200")
    assert client.get("/fhir/Patient/old").status_code == 410


def test_transaction_conditional_reference_and_if_none_exist(client):
    client.post("/fhir/Patient", json={"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "7"}]},
                headers=FHIR_JSON)
    bundle = tx(
        {"fullUrl": "urn:uuid:44444444-4444-4444-4444-444444444444",
         "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "7"}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:mrn|7"}},
        post("urn:uuid:55555555-5555-5555-5555-555555555555", {
            "resourceType": "Condition", "subject": {"reference": "Patient?identifier=urn:mrn|7"}}),
        post("urn:uuid:66666666-6666-6666-6666-666666666666", {
            "resourceType": "Condition", "subject": {"reference": "urn:uuid:44444444-4444-4444-4444-444444444444"}}),
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK"
    existing = entries[0]["response"]["location"].split("/")[1]
    for entry in entries[1:]:
        condition = client.get("/fhir/" + entry["response"]["location"].rsplit("/_history", 1)[0]).json()
        assert condition["subject"]["reference"] == f"Patient/{existing}"
    assert client.get("/fhir/Patient").json()["total"] == 1


def test_conditional_reference_must_match_exactly_one(client):
    bundle = tx(post("urn:uuid:77777777-7777-7777-7777-777777777777", {
        "resourceType": "Condition", "subject": {"reference": "Patient?identifier=urn:mrn|none"}}))
    response = post_bundle(client, bundle)
    assert response.status_code == 412
    assert "Bundle.entry[0]" in response.json()["issue"][0]["diagnostics"]


def test_unresolved_local_reference_fails(client):
    bundle = tx(post("urn:uuid:88888888-8888-8888-8888-888888888888", {
        "resourceType": "Condition", "subject": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}}))
    response = post_bundle(client, bundle)
    assert response.status_code == 400
    assert outcome_codes(response) == ["invalid"]


def _snapshot(engine) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order: the database's whole content."""
    with engine.connect() as conn:
        out = {}
        for table in ALL_TABLES:
            columns = ", ".join(c.name for c in table.columns)
            rows = conn.execute(text(f"SELECT {columns} FROM {table.name}")).all()
            out[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
        return out


def test_failing_entry_in_the_middle_leaves_database_unchanged(client, engine):
    client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1", "gender": "male"}, headers=FHIR_JSON)
    client.put("/fhir/Patient/gone", json={"resourceType": "Patient", "id": "gone"}, headers=FHIR_JSON)
    before = _snapshot(engine)
    bundle = tx(
        post("urn:uuid:aaaaaaaa-0000-0000-0000-000000000001", {"resourceType": "Patient", "gender": "female"}),
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female"},
         "request": {"method": "PUT", "url": "Patient/p1"}},
        {"request": {"method": "DELETE", "url": "Patient/gone"}},
        post("urn:uuid:aaaaaaaa-0000-0000-0000-000000000002", {"resourceType": "Patient", "gender": 12}),
        post("urn:uuid:aaaaaaaa-0000-0000-0000-000000000003", {"resourceType": "Patient", "gender": "other"}),
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["diagnostics"].startswith("Bundle.entry[3]")
    assert issue["expression"] == ["Bundle.entry[3].resource.gender"]
    assert _snapshot(engine) == before


def test_failing_if_match_in_transaction_rolls_back(client, engine):
    client.put("/fhir/Patient/p2", json={"resourceType": "Patient", "id": "p2"}, headers=FHIR_JSON)
    before = _snapshot(engine)
    bundle = tx(
        post("urn:uuid:bbbbbbbb-0000-0000-0000-000000000001", {"resourceType": "Patient"}),
        {"resource": {"resourceType": "Patient", "id": "p2", "active": True},
         "request": {"method": "PUT", "url": "Patient/p2", "ifMatch": 'W/"9"'}},
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 412
    assert _snapshot(engine) == before


def test_batch_reports_each_entry(client):
    bundle = tx(
        post("urn:uuid:cccccccc-0000-0000-0000-000000000001", {"resourceType": "Patient"}),
        post("urn:uuid:cccccccc-0000-0000-0000-000000000002", {"resourceType": "Patient", "foo": 1}),
        {"request": {"method": "GET", "url": "Patient/missing"}},
        kind="batch",
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "201 Created"
    assert entries[1]["response"]["status"] == "400 Bad Request"
    assert entries[1]["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[1].resource.foo"]
    assert entries[2]["response"]["status"] == "404 Not Found"
    assert client.get("/fhir/Patient").json()["total"] == 1


def test_transaction_returns_resources_when_asked(client):
    bundle = tx(post("urn:uuid:dddddddd-0000-0000-0000-000000000001", {"resourceType": "Patient"}))
    response = post_bundle(client, bundle, {"Prefer": "return=representation"})
    assert response.json()["entry"][0]["resource"]["resourceType"] == "Patient"
    minimal = post_bundle(client, bundle)
    assert "resource" not in minimal.json()["entry"][0]


def test_bundle_envelope_errors(client):
    assert post_bundle(client, {"resourceType": "Patient"}).status_code == 400
    assert post_bundle(client, {"resourceType": "Bundle", "type": "collection"}).status_code == 400
    no_request = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient"}}]}
    response = post_bundle(client, no_request)
    assert response.status_code == 400
    assert "Bundle.entry[0].request" in response.json()["issue"][0]["expression"]
    twice = tx(post("urn:uuid:eeeeeeee-0000-0000-0000-000000000001", {"resourceType": "Patient"}),
               post("urn:uuid:eeeeeeee-0000-0000-0000-000000000001", {"resourceType": "Patient"}))
    assert post_bundle(client, twice).status_code == 400
    bad_method = tx({"resource": {"resourceType": "Patient"}, "request": {"method": "FETCH", "url": "Patient"}})
    assert post_bundle(client, bad_method).status_code == 400


def test_transaction_with_absolute_request_url_on_this_server(client):
    bundle = tx({"resource": {"resourceType": "Patient", "id": "abs"},
                 "request": {"method": "PUT", "url": "http://testserver/fhir/Patient/abs"}})
    assert post_bundle(client, bundle).status_code == 200
    assert client.get("/fhir/Patient/abs").status_code == 200
    foreign = tx({"resource": {"resourceType": "Patient", "id": "abs"},
                  "request": {"method": "PUT", "url": "http://elsewhere.example/fhir/Patient/abs"}})
    assert post_bundle(client, foreign).status_code == 400


def test_two_writes_of_one_resource_in_a_transaction_conflict(client, engine):
    before = _snapshot(engine)
    bundle = tx(
        {"resource": {"resourceType": "Patient", "id": "twice"}, "request": {"method": "PUT", "url": "Patient/twice"}},
        {"resource": {"resourceType": "Patient", "id": "twice", "active": True},
         "request": {"method": "PUT", "url": "Patient/twice"}},
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 409
    assert outcome_codes(response) == ["conflict"]
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[0]", "Bundle.entry[1]"]
    assert _snapshot(engine) == before


def _binary_patch(operations) -> dict:
    data = base64.b64encode(json.dumps(operations).encode()).decode()
    return {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data}


def test_transaction_patch_entry_carries_json_patch_in_a_binary(client):
    client.put("/fhir/Patient/pt", json={"resourceType": "Patient", "id": "pt", "gender": "male"}, headers=FHIR_JSON)
    bundle = tx({"resource": _binary_patch([{"op": "replace", "path": "/gender", "value": "female"}]),
                 "request": {"method": "PATCH", "url": "Patient/pt"}})
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["response"]["etag"] == 'W/"2"'
    assert client.get("/fhir/Patient/pt").json()["gender"] == "female"
    history = client.get("/fhir/Patient/pt/_history").json()
    assert history["entry"][0]["request"]["method"] == "PATCH"


def test_patch_entry_that_is_not_a_json_patch_binary(client):
    client.put("/fhir/Patient/pt", json={"resourceType": "Patient", "id": "pt"}, headers=FHIR_JSON)
    not_binary = tx({"resource": {"resourceType": "Patient", "id": "pt"},
                     "request": {"method": "PATCH", "url": "Patient/pt"}})
    assert post_bundle(client, not_binary).status_code == 400
    fhirpath_patch = tx({"resource": {**_binary_patch([]), "contentType": "application/fhir+json"},
                         "request": {"method": "PATCH", "url": "Patient/pt"}})
    assert post_bundle(client, fhirpath_patch).status_code == 415
    bad_data = tx({"resource": {**_binary_patch([]), "data": "not base64!"},
                   "request": {"method": "PATCH", "url": "Patient/pt"}})
    response = post_bundle(client, bad_data)
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.data"]


def test_malformed_batch_entry_fails_alone(client):
    bundle = tx(
        {"request": {"method": "FETCH", "url": "Patient"}},
        post("urn:uuid:ffffffff-0000-0000-0000-000000000001", {"resourceType": "Patient"}),
        "not an entry",
        kind="batch",
    )
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses == ["400 Bad Request", "201 Created", "400 Bad Request"]
