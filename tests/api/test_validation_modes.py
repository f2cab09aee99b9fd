"""FHIR_VALIDATION (docs/validation.md): what a create, update or transaction is validated against, on
SQLite and PostgreSQL. A refused write is a 422 with the validator's OperationOutcome and writes nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient
from fhirjson import FHIR_JSON

from fhir_server.config import ValidationMode

VITAL_SIGNS = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
# Claims the vital-signs profile but lacks its category: only profile validation finds that.
CLAIMING = {"resourceType": "Observation", "meta": {"profile": [VITAL_SIGNS]}, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-01",
            "valueQuantity": {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}
# Claims nothing, but breaks obs-6 (no value with a dataAbsentReason): only the base definition finds that.
PLAIN = {"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
         "valueString": "70 kg", "dataAbsentReason": {"text": "not measured"}}


def _total(client: TestClient) -> int:
    return client.get("/fhir/Observation", params={"_summary": "count"}).json()["total"]


def test_off_checks_the_structure_only(served):
    client = served(validation=ValidationMode.off)
    assert client.post("/fhir/Observation", json=CLAIMING, headers=FHIR_JSON).status_code == 201
    assert client.post("/fhir/Observation", json=PLAIN, headers=FHIR_JSON).status_code == 201


def test_claimed_refuses_a_resource_that_fails_its_claimed_profile(served):
    client = served(validation=ValidationMode.claimed)
    response = client.post("/fhir/Observation", json=CLAIMING, headers=FHIR_JSON)
    assert response.status_code == 422, response.text
    errors = [i for i in response.json()["issue"] if i["severity"] == "error"]
    assert {"Observation.category"} == {e["expression"][0] for e in errors}
    assert _total(client) == 0
    update = client.put("/fhir/Observation/o1", json={**CLAIMING, "id": "o1"}, headers=FHIR_JSON)
    assert update.status_code == 422 and _total(client) == 0
    assert client.post("/fhir/Observation", json=PLAIN, headers=FHIR_JSON).status_code == 201  # claims nothing


def test_claimed_accepts_a_resource_that_meets_its_profile(served):
    client = served(validation=ValidationMode.claimed)
    valid = {**CLAIMING, "category": [{"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]}
    response = client.post("/fhir/Observation", json=valid, headers=FHIR_JSON)
    assert response.status_code == 201, response.text


def test_all_validates_every_resource_against_its_base_definition(served):
    client = served(validation=ValidationMode.all)
    response = client.post("/fhir/Observation", json=PLAIN, headers=FHIR_JSON)
    assert response.status_code == 422, response.text
    assert any(i["severity"] == "error" and "obs-6" in i["diagnostics"] and i["expression"] == ["Observation"]
               for i in response.json()["issue"])
    assert _total(client) == 0


def test_a_transaction_with_one_invalid_entry_writes_nothing(served):
    client = served(validation=ValidationMode.claimed)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": PLAIN, "request": {"method": "POST", "url": "Observation"}},
        {"resource": CLAIMING, "request": {"method": "POST", "url": "Observation"}}]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 422, response.text
    assert _total(client) == 0


def test_a_profile_stored_here_is_used_at_once_and_its_changes_too(served):
    client = served(validation=ValidationMode.claimed)
    profile = {"resourceType": "StructureDefinition", "id": "named-patient",
               "url": "http://example.org/fhir/StructureDefinition/named-patient", "name": "NamedPatient",
               "status": "active", "kind": "resource", "abstract": False, "type": "Patient",
               "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
               "differential": {"element": [{"id": "Patient.name", "path": "Patient.name", "min": 1}]}}
    assert client.put("/fhir/StructureDefinition/named-patient", json=profile, headers=FHIR_JSON).status_code == 201
    patient = {"resourceType": "Patient", "meta": {"profile": [profile["url"]]}}
    response = client.post("/fhir/Patient", json=patient, headers=FHIR_JSON)
    assert response.status_code == 422 and response.json()["issue"][0]["expression"] == ["Patient.name"]
    relaxed = {**profile, "differential": {"element": [{"id": "Patient.gender", "path": "Patient.gender", "min": 1}]}}
    assert client.put("/fhir/StructureDefinition/named-patient", json=relaxed, headers=FHIR_JSON).status_code == 200
    response = client.post("/fhir/Patient", json={**patient, "gender": "female"}, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
