"""history over HTTP (http.html#history): instance, type and system, paging, _since, _at."""

import time
from datetime import UTC, datetime

from fhirjson import FHIR_JSON, expressions, outcome_codes

BASE = "http://testserver/fhir"


def _create(client, resource_type="Patient", **fields):
    response = client.post(f"/fhir/{resource_type}", json={"resourceType": resource_type, **fields},
                           headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()


def _update(client, resource, **fields):
    body = {**resource, **fields}
    response = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=body, headers=FHIR_JSON)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _observation(client):
    return _create(client, "Observation", status="final", code={"text": "weight"})


def _now():
    """A FHIR instant between two writes, with a margin on both sides of the server's millisecond stamps."""
    time.sleep(0.01)
    moment = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(0.01)
    return moment


def _entries(response):
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "history")
    return bundle.get("entry", [])


def _versions(entries):
    return [e["response"]["etag"] for e in entries]


def _next(bundle):
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


def test_instance_history_newest_first_with_request_and_response(client):
    created = _create(client, gender="female")
    _update(client, created, gender="male")
    assert client.delete(f"/fhir/Patient/{created['id']}").status_code == 200
    response = client.get(f"/fhir/Patient/{created['id']}/_history")
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    assert bundle["link"][0] == {"relation": "self", "url": f"{BASE}/Patient/{created['id']}/_history"}
    deleted, updated, posted = _entries(response)
    assert [e["fullUrl"] for e in (deleted, updated, posted)] == [f"{BASE}/Patient/{created['id']}"] * 3
    assert _versions([deleted, updated, posted]) == ['W/"3"', 'W/"2"', 'W/"1"']
    assert posted["request"] == {"method": "POST", "url": "Patient"}
    assert posted["response"]["status"].startswith("201")
    assert posted["resource"]["gender"] == "female"
    assert posted["resource"]["meta"]["versionId"] == "1"
    assert updated["request"] == {"method": "PUT", "url": f"Patient/{created['id']}"}
    assert updated["response"]["status"].startswith("200")
    assert updated["resource"]["gender"] == "male"
    assert updated["response"]["lastModified"] == updated["resource"]["meta"]["lastUpdated"]
    assert deleted["request"] == {"method": "DELETE", "url": f"Patient/{created['id']}"}
    assert deleted["response"]["status"].startswith("2")
    assert "resource" not in deleted


def test_instance_history_records_patch_as_patch(client):
    created = _create(client)
    patched = client.patch(f"/fhir/Patient/{created['id']}", json=[{"op": "add", "path": "/active", "value": True}],
                           headers={"Content-Type": "application/json-patch+json"})
    assert patched.status_code == 200
    newest = _entries(client.get(f"/fhir/Patient/{created['id']}/_history"))[0]
    assert newest["request"] == {"method": "PATCH", "url": f"Patient/{created['id']}"}
    assert newest["response"]["status"].startswith("200")


def test_type_history_lists_only_that_type(client):
    first = _create(client)
    second = _create(client)
    _update(client, first, active=True)
    _observation(client)
    entries = _entries(client.get("/fhir/Patient/_history"))
    assert [e["resource"]["resourceType"] for e in entries] == ["Patient"] * 3
    assert [(e["resource"]["id"], e["response"]["etag"]) for e in entries] == [
        (first["id"], 'W/"2"'), (second["id"], 'W/"1"'), (first["id"], 'W/"1"')]


def test_system_history_lists_every_type(client):
    patient = _create(client)
    observation = _observation(client)
    response = client.get("/fhir/_history")
    entries = _entries(response)
    assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in entries] == [
        ("Observation", observation["id"]), ("Patient", patient["id"])]
    assert response.json()["link"][0]["url"] == f"{BASE}/_history"


def test_empty_type_history_has_no_entries(client):
    assert _entries(client.get("/fhir/Patient/_history")) == []


def test_count_pages_follow_next_until_exhausted(client):
    created = _create(client)
    for n in range(6):
        _update(client, created, birthDate=f"200{n}-01-01")
    url, pages, seen = f"/fhir/Patient/{created['id']}/_history?_count=3", [], []
    while url:
        response = client.get(url)
        entries = _entries(response)
        pages.append(len(entries))
        seen += [int(e["resource"]["meta"]["versionId"]) for e in entries]
        url = _next(response.json())
        assert len(pages) < 10, "paging does not end"
    assert pages == [3, 3, 1]
    assert seen == [7, 6, 5, 4, 3, 2, 1]


def test_count_pages_across_type_history_without_duplicates(client):
    ids = {_create(client)["id"] for _ in range(5)}
    url, seen = "/fhir/Patient/_history?_count=2", []
    while url:
        response = client.get(url)
        seen += [e["resource"]["id"] for e in _entries(response)]
        url = _next(response.json())
        assert len(seen) <= 5
    assert sorted(seen) == sorted(ids)


def test_count_zero_returns_no_entries(client):
    created = _create(client)
    entries = _entries(client.get(f"/fhir/Patient/{created['id']}/_history", params={"_count": "0"}))
    assert entries == []


def test_bad_count_is_400(client):
    response = client.get("/fhir/Patient/_history", params={"_count": "-1"})
    assert response.status_code == 400
    assert expressions(response) == ["_count"]


def test_since_keeps_versions_written_after(client):
    created = _create(client, gender="female")
    moment = _now()
    _update(client, created, gender="male")
    other = _create(client)
    entries = _entries(client.get("/fhir/Patient/_history", params={"_since": moment}))
    assert [(e["resource"]["id"], e["response"]["etag"]) for e in entries] == [
        (other["id"], 'W/"1"'), (created["id"], 'W/"2"')]
    instance = _entries(client.get(f"/fhir/Patient/{created['id']}/_history", params={"_since": moment}))
    assert _versions(instance) == ['W/"2"']


def test_since_in_the_future_is_empty(client):
    _create(client)
    assert _entries(client.get("/fhir/Patient/_history", params={"_since": "2999-01-01T00:00:00Z"})) == []


def test_at_returns_version_current_then(client):
    created = _create(client, gender="female")
    after_first = _now()
    _update(client, created, gender="male")
    after_second = _now()
    _update(client, created, gender="other")
    path = f"/fhir/Patient/{created['id']}/_history"
    at_first = _entries(client.get(path, params={"_at": after_first}))
    assert [(e["response"]["etag"], e["resource"]["gender"]) for e in at_first] == [('W/"1"', "female")]
    at_second = _entries(client.get(path, params={"_at": after_second}))
    assert [(e["response"]["etag"], e["resource"]["gender"]) for e in at_second] == [('W/"2"', "male")]


def test_at_before_creation_is_empty(client):
    created = _create(client)
    entries = _entries(client.get(f"/fhir/Patient/{created['id']}/_history", params={"_at": "2000-01-01"}))
    assert entries == []


def test_bad_since_is_400(client):
    response = client.get("/fhir/Patient/_history", params={"_since": "last tuesday"})
    assert response.status_code == 400
    assert outcome_codes(response) == ["invalid"]
    assert expressions(response) == ["_since"]


def test_bad_at_is_400(client):
    response = client.get("/fhir/_history", params={"_at": "2024-13-01"})
    assert response.status_code == 400
    assert expressions(response) == ["_at"]


def test_unknown_history_parameter_is_400(client):
    response = client.get("/fhir/Patient/_history", params={"_sort": "-_lastUpdated"})
    assert response.status_code == 400
    assert outcome_codes(response) == ["invalid"]
    assert expressions(response) == ["_sort"]


def test_history_of_unknown_resource_is_404(client):
    response = client.get("/fhir/Patient/nobody/_history")
    assert response.status_code == 404
    assert outcome_codes(response) == ["not-found"]


def test_history_of_deleted_resource_is_200(client):
    created = _create(client)
    client.delete(f"/fhir/Patient/{created['id']}")
    assert _versions(_entries(client.get(f"/fhir/Patient/{created['id']}/_history"))) == ['W/"2"', 'W/"1"']


def test_history_of_unknown_type_is_404(client):
    response = client.get("/fhir/Unicorn/_history")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
