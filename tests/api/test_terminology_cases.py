"""The terminology operations and search's terminology modifiers, driven by the case files in
tests/data/terminology (named after the spec pages), over the fixtures in fixtures.json, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhirjson import FHIR_JSON

DATA = Path(__file__).resolve().parents[1] / "data" / "terminology"
FIXTURES = json.loads((DATA / "fixtures.json").read_text())["resources"]
CASE_FILES = sorted(p for p in DATA.glob("*.json") if p.name != "fixtures.json")
CASES = [pytest.param(case, id=f"{path.stem}: {case['name']}")
         for path in CASE_FILES for case in json.loads(path.read_text())["cases"]]


def _load(client) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in FIXTURES]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text


def _outputs(parameters: dict) -> dict:
    """The first value of each output part that has one."""
    found = {}
    for part in parameters.get("parameter", []):
        for key, value in part.items():
            if key.startswith("value"):
                found.setdefault(part["name"], value)
    return found


def _parts(part: dict) -> dict:
    return {p["name"]: next((v for k, v in p.items() if k.startswith("value")), None) for p in part["part"]}


@pytest.mark.parametrize("case", CASES)
def test_case(client, case):
    _load(client)
    if "post" in case:
        response = client.post(f"/fhir/{case['post']}", json=case["body"], headers=FHIR_JSON)
    else:
        response = client.get(f"/fhir/{case['get']}", headers={"Accept": "application/fhir+json"})
    expect = case["expect"]
    assert response.status_code == expect.get("status", 200), response.text
    body = response.json()
    if response.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome"
        issue = body["issue"][0]
        assert issue["severity"] == "error"
        if "issue_code" in expect:
            assert issue["code"] == expect["issue_code"], issue
        if "expression" in expect:
            assert expect["expression"] in issue.get("expression", []), issue
        return
    if "codes" in expect or "total" in expect:
        _check_expansion(body, expect)
    if "ids" in expect:
        assert body["type"] == "searchset"
        assert sorted(e["resource"]["id"] for e in body.get("entry", [])) == sorted(expect["ids"])
    if "parameters" in expect or "message_contains" in expect:
        outputs = _outputs(body)
        for name, value in expect.get("parameters", {}).items():
            assert outputs.get(name) == value, (name, outputs)
        if "message_contains" in expect:
            assert expect["message_contains"] in outputs.get("message", ""), outputs
    if "properties" in expect:
        got = [(p["code"], p["value"]) for p in (_parts(x) for x in body["parameter"] if x["name"] == "property")]
        for code, value in expect["properties"]:
            assert (code, value) in got, (code, value, got)
        if "only_properties" in expect:
            assert {code for code, _ in got} == set(expect["only_properties"])
    if "designations" in expect and body.get("resourceType") == "Parameters":
        got = [_parts(x)["value"] for x in body["parameter"] if x["name"] == "designation"]
        assert got == expect["designations"]
    if "matches" in expect:
        matches = [_parts(x) for x in body["parameter"] if x["name"] == "match"]
        got = [[m["equivalence"], (m.get("concept") or {}).get("system"), (m.get("concept") or {}).get("code")]
               for m in matches]
        assert got == expect["matches"]
        assert all(m["source"] == "http://example.org/fhir/ConceptMap/conditions-to-icd" for m in matches)


def _check_expansion(body: dict, expect: dict) -> None:
    assert body["resourceType"] == "ValueSet"
    expansion = body["expansion"]
    assert expansion["identifier"].startswith("urn:uuid:") and expansion["timestamp"]
    contains = expansion.get("contains", [])
    if "codes" in expect:
        assert [c["code"] for c in contains] == expect["codes"]
    if "total" in expect:
        assert expansion["total"] == expect["total"]
    if "offset" in expect:
        assert expansion["offset"] == expect["offset"]
    by_code = {c["code"]: c for c in contains}
    for code, display in expect.get("displays", {}).items():
        assert by_code[code]["display"] == display
    if "inactive" in expect:
        assert [c["code"] for c in contains if c.get("inactive") is True] == expect["inactive"]
    for code, values in expect.get("designations", {}).items():
        assert [d["value"] for d in by_code[code]["designation"]] == values
    for code, definition in expect.get("definitions", {}).items():
        assert by_code[code]["extension"][0]["valueString"] == definition


def test_expansion_echoes_its_parameters_and_the_systems_it_used(client):
    _load(client)
    body = client.get("/fhir/ValueSet/$expand", params={
        "url": "http://example.org/fhir/ValueSet/chronic", "count": "3", "activeOnly": "true"}).json()
    parameters = {(p["name"], next(v for k, v in p.items() if k.startswith("value")))
                  for p in body["expansion"]["parameter"]}
    assert ("count", 3) in parameters and ("activeOnly", True) in parameters
    assert ("used-codesystem", "http://example.org/fhir/CodeSystem/conditions|2026-11") in parameters
    assert ("used-valueset", "http://example.org/fhir/ValueSet/diabetes") in parameters
    assert "compose" in body and body["url"] == "http://example.org/fhir/ValueSet/chronic"


def test_operations_are_in_the_capability_statement(client):
    statement = client.get("/fhir/metadata").json()
    by_type = {r["type"]: {(o["name"], o["definition"]) for o in r.get("operation", [])}
               for r in statement["rest"][0]["resource"]}
    hl7 = "http://hl7.org/fhir/OperationDefinition/"
    assert ("expand", hl7 + "ValueSet-expand") in by_type["ValueSet"]
    assert ("validate-code", hl7 + "ValueSet-validate-code") in by_type["ValueSet"]
    assert {("lookup", hl7 + "CodeSystem-lookup"), ("subsumes", hl7 + "CodeSystem-subsumes"),
            ("validate-code", hl7 + "CodeSystem-validate-code")} <= by_type["CodeSystem"]
    assert ("translate", hl7 + "ConceptMap-translate") in by_type["ConceptMap"]
    assert ("everything", hl7 + "Patient-everything") in by_type["Patient"]


def test_an_unknown_operation_is_404_naming_it(client):
    response = client.get("/fhir/ValueSet/$explode")
    assert response.status_code == 404
    assert "$explode" in response.json()["issue"][0]["diagnostics"]


def test_a_changed_code_system_is_seen_at_once(client):
    """The index of a CodeSystem is cached per stored version: an update must not serve the old one."""
    _load(client)
    url = "/fhir/CodeSystem/$lookup?system=http://example.org/fhir/CodeSystem/conditions&code=1220"
    assert client.get(url).status_code == 200
    changed = next(r for r in FIXTURES if r["id"] == "conditions")
    changed = {**changed, "concept": [{"code": "1220", "display": "Hypertension, renamed"}]}
    assert client.put("/fhir/CodeSystem/conditions", json=changed, headers=FHIR_JSON).status_code == 200
    display = {p["name"]: p.get("valueString") for p in client.get(url).json()["parameter"]}["display"]
    assert display == "Hypertension, renamed"
