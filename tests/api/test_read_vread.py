"""read, vread and HEAD over HTTP (http.html#read, http.html#vread), with _summary/_elements/_format/_pretty."""

from email.utils import parsedate_to_datetime

from fhirjson import FHIR_JSON, expressions, outcome_codes

SUBSETTED = "SUBSETTED"
PATIENT = {
    "resourceType": "Patient",
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Ann Lee</div>'},
    "name": [{"family": "Lee", "given": ["Ann"]}],
    "gender": "female",
    "birthDate": "1970-02-03",
    "contact": [{"name": {"family": "Lee", "given": ["Bob"]}}],
}


def _create(client, resource=None):
    response = client.post("/fhir/Patient", json=resource or PATIENT, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()


def _update(client, resource):
    response = client.put(f"/fhir/Patient/{resource['id']}", json=resource, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return response.json()


def _tags(resource):
    return [t.get("code") for t in resource.get("meta", {}).get("tag", [])]


def test_read_returns_resource_with_version_headers(client):
    created = _create(client)
    response = client.get(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.headers["etag"] == 'W/"1"'
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert modified.strftime("%Y-%m-%dT%H:%M:%S") == created["meta"]["lastUpdated"][:19]
    body = response.json()
    assert body["id"] == created["id"]
    assert body["meta"]["versionId"] == "1"
    assert body["name"] == PATIENT["name"]
    assert body["contact"] == PATIENT["contact"]


def test_read_unknown_id_is_404(client):
    response = client.get("/fhir/Patient/does-not-exist")
    assert response.status_code == 404
    assert outcome_codes(response) == ["not-found"]


def test_read_unknown_type_is_404(client):
    response = client.get("/fhir/Unicorn/1")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_read_deleted_is_410_with_etag_of_deletion(client):
    rid = _create(client)["id"]
    assert client.delete(f"/fhir/Patient/{rid}").status_code == 200
    response = client.get(f"/fhir/Patient/{rid}")
    assert response.status_code == 410
    assert outcome_codes(response) == ["deleted"]
    assert response.headers["etag"] == 'W/"2"'
    assert "last-modified" in response.headers


def test_vread_each_version(client):
    created = _create(client)
    _update(client, {**created, "gender": "male"})
    first = client.get(f"/fhir/Patient/{created['id']}/_history/1")
    second = client.get(f"/fhir/Patient/{created['id']}/_history/2")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["etag"] == 'W/"1"'
    assert second.headers["etag"] == 'W/"2"'
    assert first.headers["content-type"].startswith("application/fhir+json")
    assert (first.json()["gender"], first.json()["meta"]["versionId"]) == ("female", "1")
    assert (second.json()["gender"], second.json()["meta"]["versionId"]) == ("male", "2")


def test_vread_unknown_version_is_404(client):
    rid = _create(client)["id"]
    for version in ("2", "0", "abc"):
        response = client.get(f"/fhir/Patient/{rid}/_history/{version}")
        assert response.status_code == 404, version
        assert outcome_codes(response) == ["not-found"]


def test_vread_of_unknown_resource_is_404(client):
    response = client.get("/fhir/Patient/nobody/_history/1")
    assert response.status_code == 404
    assert outcome_codes(response) == ["not-found"]


def test_vread_of_deletion_version_is_410(client):
    rid = _create(client)["id"]
    client.delete(f"/fhir/Patient/{rid}")
    response = client.get(f"/fhir/Patient/{rid}/_history/2")
    assert response.status_code == 410
    assert outcome_codes(response) == ["deleted"]
    assert response.headers["etag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{rid}/_history/1").status_code == 200


def test_head_returns_headers_without_body(client):
    rid = _create(client)["id"]
    response = client.head(f"/fhir/Patient/{rid}")
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    assert "last-modified" in response.headers
    assert response.content == b""


def test_head_of_unknown_is_404_without_body(client):
    response = client.head("/fhir/Patient/nobody")
    assert response.status_code == 404
    assert response.content == b""


def test_summary_true_keeps_summary_elements_and_tags_subsetted(client):
    rid = _create(client)["id"]
    response = client.get(f"/fhir/Patient/{rid}", params={"_summary": "true"})
    assert response.status_code == 200
    assert response.headers["etag"] == 'W/"1"'
    body = response.json()
    assert body["name"] == PATIENT["name"]
    assert body["birthDate"] == "1970-02-03"
    assert "contact" not in body
    assert "text" not in body
    assert SUBSETTED in _tags(body)


def test_summary_text_keeps_text_id_meta(client):
    rid = _create(client)["id"]
    body = client.get(f"/fhir/Patient/{rid}", params={"_summary": "text"}).json()
    assert body["text"] == PATIENT["text"]
    assert body["id"] == rid
    assert "name" not in body and "contact" not in body
    assert SUBSETTED in _tags(body)


def test_summary_data_drops_text_only(client):
    rid = _create(client)["id"]
    body = client.get(f"/fhir/Patient/{rid}", params={"_summary": "data"}).json()
    assert "text" not in body
    assert body["contact"] == PATIENT["contact"]
    assert body["name"] == PATIENT["name"]
    assert SUBSETTED in _tags(body)


def test_summary_false_returns_full_resource_untagged(client):
    rid = _create(client)["id"]
    body = client.get(f"/fhir/Patient/{rid}", params={"_summary": "false"}).json()
    assert body["contact"] == PATIENT["contact"]
    assert body["text"] == PATIENT["text"]
    assert SUBSETTED not in _tags(body)


def test_summary_count_on_read_is_400(client):
    rid = _create(client)["id"]
    response = client.get(f"/fhir/Patient/{rid}", params={"_summary": "count"})
    assert response.status_code == 400
    assert outcome_codes(response) == ["invalid"]
    assert expressions(response) == ["_summary"]


def test_summary_unknown_mode_is_400(client):
    rid = _create(client)["id"]
    response = client.get(f"/fhir/Patient/{rid}", params={"_summary": "brief"})
    assert response.status_code == 400
    assert expressions(response) == ["_summary"]


def test_elements_keeps_named_plus_id_and_meta(client):
    rid = _create(client)["id"]
    response = client.get(f"/fhir/Patient/{rid}", params={"_elements": "name,birthDate"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"resourceType", "id", "meta", "name", "birthDate"}
    assert body["meta"]["versionId"] == "1"
    assert SUBSETTED in _tags(body)


def test_elements_keeps_mandatory_elements(client):
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                   "valueQuantity": {"value": 70, "unit": "kg"}, "subject": {"reference": "Patient/x"}}
    created = client.post("/fhir/Observation", json=observation, headers=FHIR_JSON).json()
    body = client.get(f"/fhir/Observation/{created['id']}", params={"_elements": "value"}).json()
    assert body["valueQuantity"] == observation["valueQuantity"]
    assert body["status"] == "final" and body["code"] == {"text": "weight"}
    assert "subject" not in body


def test_summary_with_elements_is_400(client):
    rid = _create(client)["id"]
    response = client.get(f"/fhir/Patient/{rid}", params={"_summary": "true", "_elements": "name"})
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_pretty_true_indents(client):
    rid = _create(client)["id"]
    plain = client.get(f"/fhir/Patient/{rid}")
    pretty = client.get(f"/fhir/Patient/{rid}", params={"_pretty": "true"})
    assert pretty.status_code == 200
    assert b"\n  " in pretty.content
    assert b"\n" not in plain.content
    assert pretty.json() == plain.json()


def test_format_xml_is_406(client):
    rid = _create(client)["id"]
    for fmt in ("xml", "application/fhir+xml"):
        response = client.get(f"/fhir/Patient/{rid}", params={"_format": fmt})
        assert response.status_code == 406, fmt
        assert outcome_codes(response) == ["not-supported"]


def test_accept_fhir_xml_is_406(client):
    rid = _create(client)["id"]
    response = client.get(f"/fhir/Patient/{rid}", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 406
    assert outcome_codes(response) == ["not-supported"]


def test_accept_json_or_any_is_ok(client):
    rid = _create(client)["id"]
    for accept in ("application/fhir+json", "application/json", "*/*",
                   "application/fhir+xml;q=0.9, application/fhir+json"):
        response = client.get(f"/fhir/Patient/{rid}", headers={"Accept": accept})
        assert response.status_code == 200, accept
        assert response.headers["content-type"].startswith("application/fhir+json")


def test_format_json_is_ok(client):
    rid = _create(client)["id"]
    for fmt in ("json", "application/fhir+json"):
        response = client.get(f"/fhir/Patient/{rid}", params={"_format": fmt})
        assert response.status_code == 200, fmt
        assert response.json()["id"] == rid


def test_format_unknown_is_406(client):
    rid = _create(client)["id"]
    response = client.get(f"/fhir/Patient/{rid}", params={"_format": "turtle"})
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"


def test_extra_path_segments_are_404(client):
    rid = _create(client)["id"]
    response = client.get(f"/fhir/Patient/{rid}/_history/1/more")
    assert response.status_code == 404
    assert outcome_codes(response) == ["not-found"]


def test_conditional_read_by_etag_and_date(client):
    client.put("/fhir/Patient/cr", json={"resourceType": "Patient", "id": "cr"},
               headers={"Content-Type": "application/fhir+json"})
    first = client.get("/fhir/Patient/cr")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    not_modified = client.get("/fhir/Patient/cr", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert client.get("/fhir/Patient/cr", headers={"If-None-Match": '"1"'}).status_code == 304
    assert client.get("/fhir/Patient/cr", headers={"If-None-Match": "*"}).status_code == 304
    assert client.get("/fhir/Patient/cr", headers={"If-None-Match": 'W/"2", "x"'}).status_code == 200
    assert client.get("/fhir/Patient/cr", headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get("/fhir/Patient/cr", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
                      ).status_code == 200
    assert client.get("/fhir/Patient/cr", headers={"If-Modified-Since": "yesterday"}).status_code == 200
    # If-None-Match decides when both are sent
    assert client.get("/fhir/Patient/cr", headers={"If-None-Match": 'W/"9"', "If-Modified-Since": modified}
                      ).status_code == 200
    client.put("/fhir/Patient/cr", json={"resourceType": "Patient", "id": "cr", "active": True},
               headers={"Content-Type": "application/fhir+json"})
    assert client.get("/fhir/Patient/cr", headers={"If-None-Match": etag}).status_code == 200
