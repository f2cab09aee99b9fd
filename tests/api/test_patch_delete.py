"""patch and delete over HTTP (http.html#patch, http.html#delete, http.html#cdelete), and 405s."""

import pytest
from fhirjson import FHIR_JSON, expressions, outcome_codes

BASE = "http://testserver/fhir"
SYS = "http://example.org/mrn"
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def _create(client, **fields):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient", **fields}, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()


def _patch(client, rid, operations, headers=None):
    return client.patch(f"/fhir/Patient/{rid}", json=operations, headers={**JSON_PATCH, **(headers or {})})


def test_patch_replace_add_remove(client):
    created = _create(client, gender="female", birthDate="1970-01-01")
    operations = [{"op": "replace", "path": "/gender", "value": "male"},
                  {"op": "add", "path": "/name", "value": [{"family": "Lee"}]},
                  {"op": "remove", "path": "/birthDate"}]
    response = _patch(client, created["id"], operations)
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["content-location"] == f"{BASE}/Patient/{created['id']}/_history/2"
    body = response.json()
    assert body["meta"]["versionId"] == "2"
    assert (body["gender"], body["name"]) == ("male", [{"family": "Lee"}])
    assert "birthDate" not in body
    assert client.get(f"/fhir/Patient/{created['id']}").json() == body


def test_patch_keeps_meta_tags(client):
    tag = {"system": "http://example.org/t", "code": "vip"}
    created = _create(client, meta={"tag": [tag]})
    body = _patch(client, created["id"], [{"op": "add", "path": "/active", "value": True}]).json()
    assert body["meta"]["tag"] == [tag]
    assert body["active"] is True


def test_patch_producing_invalid_resource_is_400(client):
    created = _create(client, gender="female")
    response = _patch(client, created["id"], [{"op": "replace", "path": "/gender", "value": 5}])
    assert response.status_code == 400
    assert expressions(response) == ["Patient.gender"]
    assert client.get(f"/fhir/Patient/{created['id']}").headers["etag"] == 'W/"1"'


def test_patch_failing_test_op_is_422(client):
    created = _create(client, gender="female")
    response = _patch(client, created["id"], [{"op": "test", "path": "/gender", "value": "male"},
                                              {"op": "replace", "path": "/gender", "value": "other"}])
    assert response.status_code == 422
    assert outcome_codes(response) == ["processing"]
    assert client.get(f"/fhir/Patient/{created['id']}").json()["gender"] == "female"


def test_patch_passing_test_op_applies(client):
    created = _create(client, gender="female")
    response = _patch(client, created["id"], [{"op": "test", "path": "/gender", "value": "female"},
                                              {"op": "replace", "path": "/gender", "value": "other"}])
    assert response.status_code == 200
    assert response.json()["gender"] == "other"


@pytest.mark.parametrize("document", [
    {"op": "replace", "path": "/gender", "value": "male"},
    [{"op": "frobnicate", "path": "/gender"}],
    [{"path": "/gender", "value": "male"}],
    [1],
    [{"op": "replace", "path": "gender", "value": "male"}],
])
def test_patch_malformed_document_is_400(client, document):
    created = _create(client, gender="female")
    response = _patch(client, created["id"], document)
    assert response.status_code == 400, response.text
    assert outcome_codes(response) == ["invalid"]


def test_patch_changing_id_is_422(client):
    created = _create(client)
    response = _patch(client, created["id"], [{"op": "replace", "path": "/id", "value": "other"}])
    assert response.status_code == 422
    assert outcome_codes(response) == ["processing"]
    assert client.get("/fhir/Patient/other").status_code == 404


def test_patch_changing_resource_type_is_422(client):
    created = _create(client)
    response = _patch(client, created["id"], [{"op": "replace", "path": "/resourceType", "value": "Person"}])
    assert response.status_code == 422


def test_patch_with_fhir_json_content_type_is_415(client):
    created = _create(client)
    response = client.patch(f"/fhir/Patient/{created['id']}", json=[{"op": "add", "path": "/active", "value": True}],
                            headers=FHIR_JSON)
    assert response.status_code == 415
    assert outcome_codes(response) == ["not-supported"]


def test_json_patch_content_type_on_post_is_415(client):
    response = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=JSON_PATCH)
    assert response.status_code == 415


def test_patch_unknown_resource_is_404(client):
    response = _patch(client, "nobody", [{"op": "add", "path": "/active", "value": True}])
    assert response.status_code == 404
    assert outcome_codes(response) == ["not-found"]


def test_patch_deleted_resource_is_410(client):
    created = _create(client)
    client.delete(f"/fhir/Patient/{created['id']}")
    response = _patch(client, created["id"], [{"op": "add", "path": "/active", "value": True}])
    assert response.status_code == 410


def test_patch_if_match(client):
    created = _create(client)
    ops = [{"op": "add", "path": "/active", "value": True}]
    stale = _patch(client, created["id"], ops, {"If-Match": 'W/"2"'})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    current = _patch(client, created["id"], ops, {"If-Match": 'W/"1"'})
    assert current.status_code == 200
    assert current.headers["etag"] == 'W/"2"'


def test_delete_returns_outcome_then_read_is_410(client):
    created = _create(client)
    response = client.delete(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert outcome_codes(response) == ["informational"]
    assert response.json()["issue"][0]["severity"] == "information"
    assert response.headers["etag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{created['id']}").status_code == 410


def test_delete_twice_is_200(client):
    created = _create(client)
    client.delete(f"/fhir/Patient/{created['id']}")
    response = client.delete(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert outcome_codes(response) == ["informational"]
    history = client.get(f"/fhir/Patient/{created['id']}/_history").json()
    assert len(history["entry"]) == 2


def test_delete_unknown_is_404(client):
    response = client.delete("/fhir/Patient/nobody")
    assert response.status_code == 404
    assert outcome_codes(response) == ["not-found"]


def test_deleted_resource_leaves_search(client):
    created = _create(client, identifier=[{"system": SYS, "value": "1"}])
    client.delete(f"/fhir/Patient/{created['id']}")
    bundle = client.get("/fhir/Patient", params={"identifier": f"{SYS}|1"}).json()
    assert bundle["total"] == 0


def test_conditional_delete_one_match_deletes_it(client):
    target = _create(client, identifier=[{"system": SYS, "value": "1"}])
    other = _create(client, identifier=[{"system": SYS, "value": "2"}])
    response = client.delete("/fhir/Patient", params={"identifier": f"{SYS}|1"})
    assert response.status_code == 200
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{target['id']}").status_code == 410
    assert client.get(f"/fhir/Patient/{other['id']}").status_code == 200


def test_conditional_delete_no_match_is_200_informational(client):
    response = client.delete("/fhir/Patient", params={"identifier": f"{SYS}|none"})
    assert response.status_code == 200
    assert outcome_codes(response) == ["informational"]
    assert response.json()["issue"][0]["severity"] == "information"


def test_conditional_delete_two_matches_is_412(client):
    first = _create(client, identifier=[{"system": SYS, "value": "1"}])
    second = _create(client, identifier=[{"system": SYS, "value": "1"}])
    response = client.delete("/fhir/Patient", params={"identifier": f"{SYS}|1"})
    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/fhir/Patient/{first['id']}").status_code == 200
    assert client.get(f"/fhir/Patient/{second['id']}").status_code == 200


def test_conditional_delete_without_criteria_is_400(client):
    _create(client)
    response = client.delete("/fhir/Patient")
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_conditional_delete_unsupported_criteria_is_400(client):
    response = client.delete("/fhir/Patient", params={"nickname": "x"})
    assert response.status_code == 400
    assert expressions(response) == ["nickname"]


def test_post_on_instance_is_405_with_allow(client):
    created = _create(client)
    response = client.post(f"/fhir/Patient/{created['id']}", json={"resourceType": "Patient"}, headers=FHIR_JSON)
    assert response.status_code == 405
    assert outcome_codes(response) == ["not-supported"]
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed == {"GET", "HEAD", "PUT", "PATCH", "DELETE"}


def test_patch_on_type_is_405_with_allow(client):
    response = client.patch("/fhir/Patient", json=[{"op": "add", "path": "/active", "value": True}],
                            headers=JSON_PATCH)
    assert response.status_code == 405
    assert outcome_codes(response) == ["not-supported"]
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed == {"GET", "HEAD", "POST", "PUT", "DELETE"}


def test_delete_on_history_is_405(client):
    created = _create(client)
    response = client.delete(f"/fhir/Patient/{created['id']}/_history/1")
    assert response.status_code == 405
    assert response.headers["allow"]
