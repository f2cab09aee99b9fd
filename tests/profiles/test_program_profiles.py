"""The care-coordination program's conformance resources in profiles/, over HTTP on SQLite and PostgreSQL.

Each StructureDefinition has a fixture file in tests/data/profiles named after its id: resources that meet it
(`valid`) and resources that break it (`invalid`), each with the issues the validator must report (severity,
issue type, FHIRPath location). A profile's resources go to [type]/$validate?profile=<url> and are created
claiming the profile (FHIR_VALIDATION=claimed). An extension's resources are resources that carry it:
$validate checks every extension against its definition by url without being asked, and the create claims
the core StructureDefinition of the resource's type, so that the write is validated too (extensibility.html).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from fhirjson import FHIR_JSON

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
DATA = Path(__file__).resolve().parents[1] / "data" / "profiles"
BASE = "https://careweave.example.org/fhir/"
CORE = "http://hl7.org/fhir/StructureDefinition/"
ERRORS = ("error", "fatal")
AUTHORED = ("StructureDefinition", "ValueSet", "CodeSystem")

FILES = {path.name: json.loads(path.read_text()) for path in sorted(PROFILES.glob("*.json"))}
STRUCTURES = {r["url"]: r for r in FILES.values() if r["resourceType"] == "StructureDefinition"}
VALUE_SETS = {r["url"]: r for r in FILES.values() if r["resourceType"] == "ValueSet"}
FIXTURES = {path.stem: json.loads(path.read_text()) for path in sorted(DATA.glob("*.json"))}

CS = BASE + "CodeSystem/"
BSER = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
NUCC = "http://nucc.org/provider-taxonomy"
# What each ValueSet must expand to, written out here rather than read back from the CodeSystems.
EXPANSIONS = {
    "cw-barrier": {(CS + "cw-barrier", c) for c in (
        "transportation", "cost", "housing", "food-insecurity", "caregiver-support", "health-literacy", "language",
        "adherence", "specialist-access", "other")},
    "cw-outreach-outcome": {(CS + "cw-outreach-outcome", c) for c in (
        "reached", "declined", "callback-requested", "no-answer", "voicemail", "wrong-number", "unable-to-reach")},
    "cw-outreach-party": {(CS + "cw-outreach-party", c) for c in ("member", "pcp", "specialist")},
    "cw-participation-status": {(CS + "cw-participation-status", c)
                                for c in ("invited", "agreed", "declined", "withdrawn")},
    "cw-disenrollment-reason": {(CS + "cw-disenrollment-reason", c) for c in (
        "goals-met", "member-request", "moved", "deceased", "hospice", "lost-eligibility", "unable-to-reach",
        "practice-withdrew", "other")},
    "cw-call-direction": {(CS + "cw-program", c) for c in ("inbound", "outbound")},
    "cw-referral-business-status": {(BSER, c) for c in (
        "2.0", "3.0", "4.0", "5.1.1", "5.1.2", "5.1.3", "5.1.4", "5.2", "6.0", "7.0")},
    "cw-primary-care-specialty": {(NUCC, c) for c in (
        "207Q00000X", "207R00000X", "208D00000X", "207QG0300X", "207RG0300X", "363LF0000X", "363LP2300X")},
}
EXPANSIONS["cw-candidate-reason"] = {(CS + "cw-candidate-reason", c) for c in (
    "chronic-conditions", "inpatient-stays", "emergency-visits", "recent-discharge", "polypharmacy", "charlson-index")}
EXPANSIONS["cw-care-gap"] = {(CS + "cw-care-gap", c) for c in (
    "diabetes-hba1c-missing", "diabetes-hba1c-poor-control", "hypertension-bp-missing", "hypertension-bp-uncontrolled",
    "heart-failure-weight-missing", "heart-failure-ef-missing", "ckd-egfr-missing", "ckd-uacr-missing",
    "influenza-vaccine-missing")}
EXPANSIONS["cw-teach-back-outcome"] = {(CS + "cw-teach-back-outcome", c) for c in (
    "understood", "partly-understood", "not-understood", "declined")}
# $care-candidates' chronic condition groups and hospice codes, and the measures' value sets, list their codes one by
# one (the server holds neither ICD-10-CM, SNOMED CT nor RxNorm), so each expands to exactly the codes it lists;
# tests/care checks a few by hand.
ENUMERATED = {"cw-hospice", "cw-essential-hypertension", "cw-palliative-care", "cw-frailty", "cw-advanced-illness",
              "cw-dementia-medication", "cw-kidney-failure", "cw-pregnancy"}
EXPANSIONS |= {vs["id"]: {(rule["system"], c["code"]) for rule in vs["compose"]["include"] for c in rule["concept"]}
               for vs in VALUE_SETS.values() if vs["id"].startswith("cw-chronic-") or vs["id"] in ENUMERATED}


def _is_extension(fixture: dict) -> bool:
    return STRUCTURES[fixture["profile"]]["type"] == "Extension"


def _validate(client, fixture: dict, resource: dict) -> dict:
    params = None if _is_extension(fixture) else {"profile": fixture["profile"]}
    response = client.post(f"/fhir/{resource['resourceType']}/$validate", params=params, json=resource,
                           headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome


def _create(client, fixture: dict, resource: dict):
    """POST the resource claiming the fixture's profile (an extension's: its type's core definition)."""
    claimed = copy.deepcopy(resource)
    claimed.pop("id", None)
    profile = CORE + resource["resourceType"] if _is_extension(fixture) else fixture["profile"]
    claimed.setdefault("meta", {})["profile"] = [profile]
    return client.post(f"/fhir/{resource['resourceType']}", json=claimed, headers=FHIR_JSON)


def _found(outcome: dict) -> list[tuple]:
    """(severity, code, expression) of each issue, once per expression it names."""
    return [(i["severity"], i["code"], e) for i in outcome["issue"] for e in i.get("expression") or [None]]


# -- the files ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FILES))
def test_file_is_named_after_its_resource_and_canonical_url(name):
    resource = FILES[name]
    resource_type, rid = resource["resourceType"], resource["id"]
    assert name == f"{resource_type}-{rid}.json"
    assert resource["url"] == f"{BASE}{resource_type}/{rid}"
    assert (resource["version"], resource["status"], resource["publisher"]) == ("0.1.0", "active", "CareWeave")
    if resource_type in AUTHORED:
        assert rid.startswith("cw-") or resource.get("type") == "Extension", rid
        assert resource["date"] == "2026-12-07" and resource["name"] and resource["title"] and resource["description"]


@pytest.mark.parametrize("url", sorted(STRUCTURES))
def test_structure_definition_is_a_differential_constraint_on_core(url):
    definition = STRUCTURES[url]
    assert "snapshot" not in definition
    assert definition["derivation"] == "constraint"
    assert definition["baseDefinition"] == CORE + definition["type"]
    assert definition["fhirVersion"] == "4.0.1"
    elements = definition["differential"]["element"]
    assert elements[0]["id"] == elements[0]["path"] == definition["type"]
    for element in elements:
        assert element["id"] and element["path"], element
        assert element["path"] == ".".join(step.partition(":")[0] for step in element["id"].split(".")), element
    if definition["type"] == "Extension":
        assert definition["context"], url
        fixed = next(e for e in elements if e["id"] == "Extension.url")
        assert fixed["fixedUri"] == url


def test_every_structure_definition_has_a_fixture_file_and_every_fixture_file_a_definition():
    ids = {definition["id"] for definition in STRUCTURES.values()}
    assert ids == set(FIXTURES), ids ^ set(FIXTURES)
    for stem, fixture in FIXTURES.items():
        assert fixture["profile"] == STRUCTURES[fixture["profile"]]["url"] and fixture["profile"].endswith("/" + stem)
        assert len(fixture["valid"]) >= 1 and len(fixture["invalid"]) >= 2, stem
        names = [case["name"] for case in fixture["invalid"]]
        assert len(set(names)) == len(names), stem
        for case in fixture["invalid"]:
            assert any(issue["severity"] in ERRORS for issue in case["issues"]), (stem, case["name"])


def test_every_value_set_has_its_expected_expansion_written_down():
    assert {vs["id"] for vs in VALUE_SETS.values()} == set(EXPANSIONS)


# -- snapshots and fixtures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", sorted(FIXTURES))
def test_definition_gets_a_snapshot(client, stem):
    """The server generates the definition's snapshot from its differential: a profile or extension it cannot
    use is reported as a `processing` error, one it cannot find as `not-found`."""
    fixture = FIXTURES[stem]
    outcome = _validate(client, fixture, fixture["valid"][0])
    unusable = [f for f in _found(outcome) if f[1] in ("processing", "not-found")]
    assert not unusable, outcome


VALID = [pytest.param(stem, index, id=f"{stem}: {resource.get('id', index)}")
         for stem, fixture in FIXTURES.items() for index, resource in enumerate(fixture["valid"])]


@pytest.mark.parametrize(("stem", "index"), VALID)
def test_valid_resource(client, stem, index):
    fixture = FIXTURES[stem]
    resource = fixture["valid"][index]
    outcome = _validate(client, fixture, resource)
    errors = [f for f in _found(outcome) if f[0] in ERRORS]
    assert not errors, outcome
    response = _create(client, fixture, resource)
    assert response.status_code == 201, response.text


INVALID = [pytest.param(stem, case, id=f"{stem}: {case['name']}")
           for stem, fixture in FIXTURES.items() for case in fixture["invalid"]]


@pytest.mark.parametrize(("stem", "case"), INVALID)
def test_invalid_resource(client, stem, case):
    fixture = FIXTURES[stem]
    resource = case["resource"]
    outcome = _validate(client, fixture, resource)
    found = _found(outcome)
    expected = {(i["severity"], i["code"], i["expression"]) for i in case["issues"]}
    assert not expected - set(found), (expected - set(found), outcome)
    unexpected = [f for f in found if f[0] in ERRORS and f not in expected]
    assert not unexpected, (unexpected, outcome)
    response = _create(client, fixture, resource)
    assert response.status_code == 422, response.text
    refused = {f[2] for f in _found(response.json()) if f[0] in ERRORS}
    errors = {i["expression"] for i in case["issues"] if i["severity"] in ERRORS}
    assert errors <= refused, (errors - refused, response.json())
    count = client.get(f"/fhir/{resource['resourceType']}", params={"_summary": "count"}).json()
    assert count["total"] == 0, count


# -- terminology ---------------------------------------------------------------------------------------------------


def _expansion(client, url: str) -> set[tuple[str, str]]:
    response = client.get("/fhir/ValueSet/$expand", params={"url": url})
    assert response.status_code == 200, response.text
    expansion = response.json()["expansion"]
    codes = [(c["system"], c["code"]) for c in expansion.get("contains", [])]
    assert expansion["total"] == len(codes) == len(set(codes))
    return set(codes)


@pytest.mark.parametrize("url", sorted(VALUE_SETS))
def test_value_set_in_profiles_expands_without_being_stored(client, url):
    """The program's terminology ships with the server: the terminology operations find it unstored."""
    assert _expansion(client, url) == EXPANSIONS[VALUE_SETS[url]["id"]]


@pytest.mark.parametrize("url", sorted(VALUE_SETS))
def test_value_set_expands_to_its_codes_once_stored(client, url):
    terminology = [r for r in FILES.values() if r["resourceType"] in ("CodeSystem", "ValueSet")]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in terminology]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    assert _expansion(client, url) == EXPANSIONS[VALUE_SETS[url]["id"]]


# -- the search parameter over the extension ------------------------------------------------------------------------


def test_practices_are_found_by_their_participation_status(client):
    """SearchParameter-organization-program-participation indexes the extension's `status`."""
    practices = {fixture["id"]: fixture for fixture in FIXTURES["cw-practice"]["valid"]}
    for rid, practice in practices.items():
        claimed = copy.deepcopy(practice) | {"meta": {"profile": [FIXTURES["cw-practice"]["profile"]]}}
        assert client.put(f"/fhir/Organization/{rid}", json=claimed, headers=FHIR_JSON).status_code == 201
    bundle = client.get("/fhir/Organization", params={"program-participation": "agreed"}).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["practice1"]
    bundle = client.get("/fhir/Organization", params={"program-participation": "invited,declined"}).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["practice2"]
