"""`fhir-server ig load` through the real entry point, on SQLite and PostgreSQL: an implementation guide's
NPM package (here a small hand-made one shaped like US Core's) is stored once, and resources that claim its
profiles are then validated against them on write."""

from __future__ import annotations

import os
import subprocess

from conftest import BASE_URL
from fhirjson import FHIR_JSON
from test_terminology_cli import CLI, npm_package, summary

PROFILE = {"resourceType": "StructureDefinition", "id": "example-patient",
           "url": "http://example.org/fhir/StructureDefinition/example-patient", "version": "1.0.0",
           "name": "ExamplePatient", "status": "active", "kind": "resource", "abstract": False, "type": "Patient",
           "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
           "differential": {"element": [
               {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1},
               {"id": "Patient.gender", "path": "Patient.gender", "min": 1,
                "binding": {"strength": "required", "valueSet": "http://example.org/fhir/ValueSet/two-genders"}}]}}
VALUE_SET = {"resourceType": "ValueSet", "id": "two-genders", "url": "http://example.org/fhir/ValueSet/two-genders",
             "status": "active", "compose": {"include": [{"system": "http://hl7.org/fhir/administrative-gender",
                                                          "concept": [{"code": "female"}, {"code": "male"}]}]}}
SEARCH_PARAMETER = {"resourceType": "SearchParameter", "id": "ignored", "url": "http://example.org/sp", "name": "x",
                    "status": "active", "description": "x", "code": "x", "base": ["Patient"], "type": "token"}


def run(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FHIR_DATABASE_URL": settings.database_url, "FHIR_BASE_URL": BASE_URL, "COLUMNS": "200"}
    return subprocess.run([*CLI, "ig", "load", *args], env=env, capture_output=True, text=True, timeout=600)


def test_an_ig_package_loads_once_and_its_profiles_validate_writes(client, settings, tmp_path):
    package = npm_package(tmp_path / "ig.tgz", [PROFILE, VALUE_SET, SEARCH_PARAMETER])
    first = run(settings, str(package))
    assert first.returncode == 0, first.stderr
    assert summary(first) == [2, 0, 0, 0]  # the SearchParameter is not taken
    again = run(settings, str(package))
    assert again.returncode == 0 and summary(again) == [0, 0, 2, 0]
    claiming = {"resourceType": "Patient", "meta": {"profile": [PROFILE["url"]]}, "gender": "other"}
    refused = client.post("/fhir/Patient", json=claiming, headers=FHIR_JSON)
    assert refused.status_code == 422, refused.text
    errors = {(i["code"], i["expression"][0]) for i in refused.json()["issue"] if i["severity"] == "error"}
    assert errors == {("required", "Patient.identifier"), ("code-invalid", "Patient.gender")}
    valid = {**claiming, "gender": "female", "identifier": [{"system": "urn:example", "value": "1"}]}
    assert client.post("/fhir/Patient", json=valid, headers=FHIR_JSON).status_code == 201


def test_a_package_that_cannot_be_read_fails(settings, tmp_path):
    broken = tmp_path / "broken.tgz"
    broken.write_bytes(b"not a tarball")
    result = run(settings, str(broken))
    assert result.returncode == 1
    assert "cannot read" in result.stderr
