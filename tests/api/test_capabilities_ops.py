"""capabilities (http.html#capabilities), health and metrics endpoints, request ids, unknown operations,
and the search-type interaction over HTTP (http.html#search, search.html)."""

import re

from fhirjson import FHIR_JSON, expressions, outcome_codes

BASE = "http://testserver/fhir"
SYS = "http://example.org/mrn"
TYPE_INTERACTIONS = {"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create",
                     "search-type"}
SYSTEM_INTERACTIONS = {"transaction", "batch", "history-system", "search-system"}


def _create(client, resource_type="Patient", **fields):
    response = client.post(f"/fhir/{resource_type}", json={"resourceType": resource_type, **fields},
                           headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()


def _searchset(response):
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
    return bundle


def _ids(bundle):
    return sorted(e["resource"]["id"] for e in bundle.get("entry", []))


def _next(bundle):
    return next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)


def test_metadata_is_capability_statement(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert statement["status"] == "active"
    assert "application/fhir+json" in statement["format"]
    assert statement["implementation"]["url"] == BASE
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    assert {i["code"] for i in rest["interaction"]} == SYSTEM_INTERACTIONS


def test_metadata_lists_every_r4_resource_type_with_interactions(client):
    resources = client.get("/fhir/metadata").json()["rest"][0]["resource"]
    types = [r["type"] for r in resources]
    assert len(types) == len(set(types)) == 146
    assert {"Patient", "Observation", "CarePlan", "Bundle", "Parameters", "MedicinalProduct",
            "EffectEvidenceSynthesis"} <= set(types)
    for resource in resources:
        expected = {"read", "vread", "create", "search-type"} if resource["type"] == "AuditEvent" else \
            TYPE_INTERACTIONS  # the audit log is append-only
        assert {i["code"] for i in resource["interaction"]} == expected, resource["type"]
    audit = next(r for r in resources if r["type"] == "AuditEvent")
    assert {p["name"] for p in audit["searchParam"]} == {"_id", "date", "patient", "agent", "altid", "entity",
                                                         "action", "outcome", "subtype", "type"}


def test_metadata_advertises_routed_search_parameters(client):
    patient = next(r for r in client.get("/fhir/metadata").json()["rest"][0]["resource"] if r["type"] == "Patient")
    assert {p["name"] for p in patient["searchParam"]} >= {"_id", "_lastUpdated", "identifier"}


def test_metadata_mode_full_is_ok_and_terminology_is_400(client):
    assert client.get("/fhir/metadata", params={"mode": "full"}).status_code == 200
    response = client.get("/fhir/metadata", params={"mode": "terminology"})
    assert response.status_code == 400
    assert outcome_codes(response) == ["not-supported"]


def test_metadata_in_xml_is_406(client):
    response = client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 406
    assert response.json()["resourceType"] == "OperationOutcome"


def test_healthz_and_readyz(client):
    health = client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_metrics_count_reads(client):
    rid = _create(client)["id"]
    assert client.get(f"/fhir/Patient/{rid}").status_code == 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = [line for line in response.text.splitlines() if line.startswith("fhir_requests_total{")]
    assert any('interaction="read"' in s and 'resource_type="Patient"' in s and 'status="200"' in s
               for s in samples), samples


def test_request_id_is_echoed_when_well_formed(client):
    for path in ("/fhir/metadata", "/healthz", "/fhir/Patient/nobody"):
        response = client.get(path, headers={"X-Request-Id": "abc-123.DEF_4"})
        assert response.headers["x-request-id"] == "abc-123.DEF_4", path


def test_request_id_is_generated_when_absent_or_malformed(client):
    generated = set()
    for headers in ({}, {"X-Request-Id": "has spaces in it"}, {"X-Request-Id": "x" * 65}, {"X-Request-Id": ""}):
        value = client.get("/fhir/metadata", headers=headers).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", value), (headers, value)
        generated.add(value)
    assert len(generated) == 4


def test_unknown_operation_is_404(client):
    rid = _create(client)["id"]
    for path in ("/fhir/Patient/$foo", f"/fhir/Patient/{rid}/$foo", "/fhir/$foo"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert outcome_codes(response) == ["not-supported"]
    assert client.post("/fhir/Patient/$foo", json={"resourceType": "Parameters"}, headers=FHIR_JSON).status_code == 404


def test_search_by_id_list(client):
    first, second, _third = (_create(client)["id"] for _ in range(3))
    bundle = _searchset(client.get("/fhir/Patient", params={"_id": f"{first},{second}"}))
    assert bundle["total"] == 2
    assert _ids(bundle) == sorted([first, second])
    for entry in bundle["entry"]:
        assert entry["fullUrl"] == f"{BASE}/Patient/{entry['resource']['id']}"
        assert entry["search"]["mode"] == "match"
    assert bundle["link"][0]["relation"] == "self"


def test_search_by_identifier(client):
    match = _create(client, identifier=[{"system": SYS, "value": "1"}])["id"]
    _create(client, identifier=[{"system": SYS, "value": "2"}])
    _create(client, identifier=[{"system": "http://other.example", "value": "1"}])
    assert _ids(_searchset(client.get("/fhir/Patient", params={"identifier": f"{SYS}|1"}))) == [match]
    assert len(_ids(_searchset(client.get("/fhir/Patient", params={"identifier": "1"})))) == 2
    assert _searchset(client.get("/fhir/Patient", params={"identifier": f"{SYS}|"}))["total"] == 2


def test_search_by_last_updated(client):
    rid = _create(client)["id"]
    assert _ids(_searchset(client.get("/fhir/Patient", params={"_lastUpdated": "ge2020-01-01"}))) == [rid]
    assert _searchset(client.get("/fhir/Patient", params={"_lastUpdated": "lt2020-01-01"}))["total"] == 0


def test_search_does_not_mix_types(client):
    _create(client, "Observation", status="final", code={"text": "x"})
    assert _searchset(client.get("/fhir/Patient"))["total"] == 0


def test_search_count_pages_without_duplicates(client):
    ids = sorted(_create(client)["id"] for _ in range(5))
    url, seen, pages = "/fhir/Patient?_count=2", [], []
    while url:
        bundle = _searchset(client.get(url))
        # The first page is counted; later pages are not, unless _total=accurate asks (docs/search.md).
        assert bundle.get("total") == (5 if not pages else None)
        pages.append(len(bundle.get("entry", [])))
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        url = _next(bundle)
        assert len(pages) < 10, "paging does not end"
    assert pages == [2, 2, 1]
    assert sorted(seen) == ids and len(seen) == len(set(seen))


def test_search_summary_count_has_total_only(client):
    for _ in range(3):
        _create(client)
    bundle = _searchset(client.get("/fhir/Patient", params={"_summary": "count"}))
    assert bundle["total"] == 3
    assert "entry" not in bundle
    assert _next(bundle) is None


def test_search_unknown_parameter_is_400_when_strict(client):
    response = client.get("/fhir/Patient", params={"nickname": "Lee"}, headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    assert outcome_codes(response) == ["not-supported"]
    assert expressions(response) == ["nickname"]


def test_search_unknown_parameter_is_reported_when_lenient(client):
    rid = _create(client)["id"]
    bundle = _searchset(client.get("/fhir/Patient", params={"nickname": "Lee"}))
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"] == [rid]
    outcome = next(e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "outcome")
    assert outcome["issue"][0]["expression"] == ["nickname"]
    assert "nickname" not in bundle["link"][0]["url"]


def test_search_unknown_modifier_is_400(client):
    response = client.get("/fhir/Patient", params={"name:sounds-like": "Lee"})
    assert response.status_code == 400
    assert expressions(response) == ["name:sounds-like"]


def test_search_bad_date_is_400(client):
    for value in ("ge2020-13-01", "yesterday"):
        response = client.get("/fhir/Patient", params={"_lastUpdated": value})
        assert response.status_code == 400, value
        assert outcome_codes(response) == ["invalid"]
        assert expressions(response) == ["_lastUpdated"]


def test_search_bad_count_is_400(client):
    response = client.get("/fhir/Patient", params={"_count": "many"})
    assert response.status_code == 400
    assert expressions(response) == ["_count"]


def test_post_search_with_form_body(client):
    first, second = _create(client)["id"], _create(client)["id"]
    response = client.post("/fhir/Patient/_search", data={"_id": first})
    assert _ids(_searchset(response)) == [first]
    assert second not in response.text


def test_post_search_combines_url_and_form_parameters(client):
    rid = _create(client, identifier=[{"system": SYS, "value": "1"}])["id"]
    _create(client, identifier=[{"system": SYS, "value": "1"}])
    response = client.post("/fhir/Patient/_search", params={"identifier": f"{SYS}|1"}, data={"_id": rid})
    assert _ids(_searchset(response)) == [rid]


def test_search_ignores_empty_parameters(client):
    client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers={"Content-Type": "application/fhir+json"})
    response = client.get("/fhir/Patient", params={"_id": "", "identifier": "", "_count": ""})
    assert response.status_code == 200
    assert response.json()["total"] == 1
    # with nothing left to select by, a conditional interaction is refused rather than matching everything
    deleted = client.delete("/fhir/Patient", params={"identifier": ""})
    assert deleted.status_code == 400
