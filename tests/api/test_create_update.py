"""create and update over HTTP (http.html#create, #ccreate, #update, #cond-update, #concurrency, #return)."""

import pytest
from fhirjson import FHIR_JSON, expressions, outcome_codes

BASE = "http://testserver/fhir"
SYS = "http://example.org/mrn"


def _create(client, headers=None, **fields):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient", **fields},
                           headers={**FHIR_JSON, **(headers or {})})
    assert response.status_code == 201, response.text
    return response.json()


def _history_total(client):
    return len(client.get("/fhir/Patient/_history").json().get("entry", []))


def _with_mrn(client, value):
    return _create(client, identifier=[{"system": SYS, "value": value}])


def test_create_returns_201_with_location_and_server_id(client):
    body = {"resourceType": "Patient", "id": "client-chosen", "gender": "female",
            "meta": {"versionId": "9", "tag": [{"system": "http://example.org/t", "code": "vip"}],
                     "profile": ["http://example.org/StructureDefinition/p"]}}
    response = client.post("/fhir/Patient", json=body, headers=FHIR_JSON)
    assert response.status_code == 201
    created = response.json()
    assert created["id"] != "client-chosen"
    assert response.headers["location"] == f"{BASE}/Patient/{created['id']}/_history/1"
    assert response.headers["etag"] == 'W/"1"'
    assert "last-modified" in response.headers
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert created["meta"]["versionId"] == "1"
    assert created["meta"]["lastUpdated"].endswith("Z")
    assert created["meta"]["tag"] == body["meta"]["tag"]
    assert created["meta"]["profile"] == body["meta"]["profile"]
    assert created["gender"] == "female"
    assert client.get("/fhir/Patient/client-chosen").status_code == 404
    assert client.get(f"/fhir/Patient/{created['id']}").json() == created


def test_create_body_type_mismatch_is_400(client):
    response = client.post("/fhir/Patient", json={"resourceType": "Observation"}, headers=FHIR_JSON)
    assert response.status_code == 400
    assert outcome_codes(response) == ["invalid"]
    assert expressions(response) == ["resourceType"]


def test_create_invalid_json_is_400(client):
    response = client.post("/fhir/Patient", content=b'{"resourceType": "Patient",', headers=FHIR_JSON)
    assert response.status_code == 400
    assert outcome_codes(response) == ["invalid"]


def test_create_unknown_element_is_400_with_expression(client):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient", "foo": 1}, headers=FHIR_JSON)
    assert response.status_code == 400
    assert outcome_codes(response) == ["structure"]
    assert expressions(response) == ["Patient.foo"]


@pytest.mark.parametrize("field, value", [("gender", 5), ("name", "x"), ("birthDate", "yesterday"),
                                          ("active", "yes")])
def test_create_wrong_type_is_400_at_element(client, field, value):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient", field: value}, headers=FHIR_JSON)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert any(e.startswith(f"Patient.{field}") for e in expressions(response)), response.text


@pytest.mark.parametrize("value", [None, "", " ", [], {}])
def test_create_null_or_empty_is_400(client, value):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": value}, headers=FHIR_JSON)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert expressions(response) == ["Patient.gender"]


@pytest.mark.parametrize("body", [b"[]", b"[1]", b'"Patient"', b"42", b"null"])
def test_create_non_object_body_is_400(client, body):
    response = client.post("/fhir/Patient", content=body, headers=FHIR_JSON)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_create_without_body_is_400(client):
    response = client.post("/fhir/Patient", headers=FHIR_JSON)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("content_type", ["application/fhir+xml", "application/xml", "text/plain"])
def test_create_unsupported_content_type_is_415(client, content_type):
    response = client.post("/fhir/Patient", content=b'{"resourceType": "Patient"}',
                           headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert outcome_codes(response) == ["not-supported"]


def test_create_declared_oversized_body_is_413(client, settings):
    response = client.post("/fhir/Patient", content=b'{"resourceType": "Patient"}',
                           headers={**FHIR_JSON, "Content-Length": str(settings.max_body_bytes + 1)})
    assert response.status_code == 413
    assert outcome_codes(response) == ["too-costly"]


def test_create_streamed_oversized_body_is_413(client, settings):
    response = client.post("/fhir/Patient", content=iter([b" " * (settings.max_body_bytes + 1)]), headers=FHIR_JSON)
    assert response.status_code == 413
    assert outcome_codes(response) == ["too-costly"]
    assert _history_total(client) == 0


def test_update_returns_200_version_2_and_content_location(client):
    created = _create(client, gender="female")
    response = client.put(f"/fhir/Patient/{created['id']}", json={**created, "gender": "male"}, headers=FHIR_JSON)
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["content-location"] == f"{BASE}/Patient/{created['id']}/_history/2"
    assert response.json()["meta"]["versionId"] == "2"
    assert response.json()["gender"] == "male"
    assert client.get(f"/fhir/Patient/{created['id']}").json()["gender"] == "male"


def test_update_creates_with_client_id(client):
    response = client.put("/fhir/Patient/p-1", json={"resourceType": "Patient", "id": "p-1"}, headers=FHIR_JSON)
    assert response.status_code == 201
    assert response.headers["location"] == f"{BASE}/Patient/p-1/_history/1"
    assert response.json()["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/p-1").status_code == 200


def test_update_body_id_mismatch_is_400(client):
    response = client.put("/fhir/Patient/p-1", json={"resourceType": "Patient", "id": "p-2"}, headers=FHIR_JSON)
    assert response.status_code == 400
    assert expressions(response) == ["Patient.id"]
    assert client.get("/fhir/Patient/p-1").status_code == 404


def test_update_without_body_id_is_400(client):
    response = client.put("/fhir/Patient/p-1", json={"resourceType": "Patient"}, headers=FHIR_JSON)
    assert response.status_code == 400
    assert expressions(response) == ["Patient.id"]


def test_update_body_type_mismatch_is_400(client):
    response = client.put("/fhir/Patient/p-1", json={"resourceType": "Observation", "id": "p-1"},
                          headers=FHIR_JSON)
    assert response.status_code == 400
    assert expressions(response) == ["resourceType"]


@pytest.mark.parametrize("bad_id", ["a" * 65, "a_b"])
def test_update_invalid_url_id_is_400(client, bad_id):
    for body in ({"resourceType": "Patient", "id": bad_id}, {"resourceType": "Patient"}):
        response = client.put(f"/fhir/Patient/{bad_id}", json=body, headers=FHIR_JSON)
        assert response.status_code == 400, body
        assert response.json()["resourceType"] == "OperationOutcome"


def test_update_if_match_current_version_is_200(client):
    created = _create(client)
    for etag, version in (('W/"1"', "2"), ('"2"', "3")):
        response = client.put(f"/fhir/Patient/{created['id']}", json=created,
                              headers={**FHIR_JSON, "If-Match": etag})
        assert response.status_code == 200, etag
        assert response.json()["meta"]["versionId"] == version


def test_update_if_match_stale_version_is_412(client):
    created = _create(client)
    response = client.put(f"/fhir/Patient/{created['id']}", json=created, headers={**FHIR_JSON, "If-Match": 'W/"2"'})
    assert response.status_code == 412
    assert outcome_codes(response) == ["conflict"]
    assert client.get(f"/fhir/Patient/{created['id']}").headers["etag"] == 'W/"1"'


def test_update_if_match_unknown_resource_is_412(client):
    response = client.put("/fhir/Patient/p-9", json={"resourceType": "Patient", "id": "p-9"},
                          headers={**FHIR_JSON, "If-Match": 'W/"1"'})
    assert response.status_code == 412
    assert client.get("/fhir/Patient/p-9").status_code == 404


def test_update_malformed_if_match_is_400(client):
    created = _create(client)
    response = client.put(f"/fhir/Patient/{created['id']}", json=created,
                          headers={**FHIR_JSON, "If-Match": "W/\"one\""})
    assert response.status_code == 400
    assert outcome_codes(response) == ["invalid"]


def test_update_after_delete_recreates_with_next_version(client):
    created = _create(client)
    client.delete(f"/fhir/Patient/{created['id']}")
    response = client.put(f"/fhir/Patient/{created['id']}", json=created, headers=FHIR_JSON)
    assert response.status_code == 201
    assert response.json()["meta"]["versionId"] == "3"
    assert response.headers["location"] == f"{BASE}/Patient/{created['id']}/_history/3"
    assert client.get(f"/fhir/Patient/{created['id']}").status_code == 200


def test_prefer_return_minimal_has_empty_body(client):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient"},
                           headers={**FHIR_JSON, "Prefer": "return=minimal"})
    assert response.status_code == 201
    assert response.content == b""
    assert response.headers["etag"] == 'W/"1"'
    assert "last-modified" in response.headers
    assert response.headers["location"].startswith(f"{BASE}/Patient/")


def test_prefer_return_operation_outcome(client):
    created = _create(client)
    response = client.put(f"/fhir/Patient/{created['id']}", json=created,
                          headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})
    assert response.status_code == 200
    assert outcome_codes(response) == ["informational"]
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["content-location"].endswith("/_history/2")


def test_prefer_return_representation(client):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "other"},
                           headers={**FHIR_JSON, "Prefer": "return=representation"})
    assert response.status_code == 201
    assert response.json()["gender"] == "other"


def test_prefer_bogus_return_is_400_and_writes_nothing(client):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient"},
                           headers={**FHIR_JSON, "Prefer": "return=everything"})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert _history_total(client) == 0


def test_conditional_create_without_match_creates(client):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient"},
                           headers={**FHIR_JSON, "If-None-Exist": f"identifier={SYS}|1"})
    assert response.status_code == 201
    assert "location" in response.headers


def test_conditional_create_with_one_match_returns_existing(client):
    existing = _with_mrn(client, "1")
    response = client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "male"},
                           headers={**FHIR_JSON, "If-None-Exist": f"identifier={SYS}|1"})
    assert response.status_code == 200
    assert response.json() == existing
    assert response.headers["etag"] == 'W/"1"'
    assert _history_total(client) == 1


def test_conditional_create_with_two_matches_is_412(client):
    _with_mrn(client, "1")
    _with_mrn(client, "1")
    response = client.post("/fhir/Patient", json={"resourceType": "Patient"},
                           headers={**FHIR_JSON, "If-None-Exist": f"identifier={SYS}|1"})
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"
    assert _history_total(client) == 2


def test_conditional_create_unsupported_criteria_is_400(client):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient"},
                           headers={**FHIR_JSON, "If-None-Exist": "nickname=x"})
    assert response.status_code == 400
    assert outcome_codes(response) == ["not-supported"]
    assert expressions(response) == ["nickname"]


def test_conditional_update_without_match_creates(client):
    body = {"resourceType": "Patient", "identifier": [{"system": SYS, "value": "7"}]}
    response = client.put("/fhir/Patient", params={"identifier": f"{SYS}|7"}, json=body, headers=FHIR_JSON)
    assert response.status_code == 201
    rid = response.json()["id"]
    assert response.headers["location"] == f"{BASE}/Patient/{rid}/_history/1"


def test_conditional_update_with_one_match_updates_it(client):
    existing = _with_mrn(client, "7")
    body = {"resourceType": "Patient", "identifier": existing["identifier"], "gender": "male"}
    response = client.put("/fhir/Patient", params={"identifier": f"{SYS}|7"}, json=body, headers=FHIR_JSON)
    assert response.status_code == 200
    assert response.json()["id"] == existing["id"]
    assert response.json()["meta"]["versionId"] == "2"
    assert client.get(f"/fhir/Patient/{existing['id']}").json()["gender"] == "male"


def test_conditional_update_with_two_matches_is_412(client):
    _with_mrn(client, "7")
    _with_mrn(client, "7")
    response = client.put("/fhir/Patient", params={"identifier": f"{SYS}|7"}, json={"resourceType": "Patient"},
                          headers=FHIR_JSON)
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"


def test_conditional_update_body_id_differs_from_match_is_400(client):
    _with_mrn(client, "7")
    response = client.put("/fhir/Patient", params={"identifier": f"{SYS}|7"},
                          json={"resourceType": "Patient", "id": "other"}, headers=FHIR_JSON)
    assert response.status_code == 400
    assert expressions(response) == ["Patient.id"]


def test_conditional_update_without_criteria_is_400(client):
    response = client.put("/fhir/Patient", json={"resourceType": "Patient"}, headers=FHIR_JSON)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_very_long_identifier_is_stored_and_found(client):
    value = "v" * 5000
    created = client.post("/fhir/Patient", json={"resourceType": "Patient",
                                                 "identifier": [{"system": "urn:long", "value": value}]},
                          headers=FHIR_JSON)
    assert created.status_code == 201
    found = client.get("/fhir/Patient", params={"identifier": f"urn:long|{value}"})
    assert found.json()["total"] == 1
