"""`fhir-server validate` through the real entry point, on SQLite and PostgreSQL: files checked as
`$validate` checks them, here against a program profile found in FHIR_PROFILES_DIR (as the care program's
profiles in profiles/ will be) and one stored in the database."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import BASE_URL
from fhirjson import FHIR_JSON
from test_terminology_cli import CLI

PROGRAM_PROFILE = {"resourceType": "StructureDefinition", "id": "member",
                   "url": "http://example.org/fhir/StructureDefinition/member", "name": "Member", "status": "active",
                   "kind": "resource", "abstract": False, "type": "Patient",
                   "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient", "derivation": "constraint",
                   "differential": {"element": [{"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1}]}}
STORED_PROFILE = {**PROGRAM_PROFILE, "id": "stored-member", "url": "http://example.org/fhir/StructureDefinition/stored",
                  "name": "StoredMember",
                  "differential": {"element": [{"id": "Patient.gender", "path": "Patient.gender", "min": 1}]}}


def run(settings, profiles_dir, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FHIR_DATABASE_URL": settings.database_url, "FHIR_BASE_URL": BASE_URL,
           "FHIR_PROFILES_DIR": str(profiles_dir), "COLUMNS": "300"}
    return subprocess.run([*CLI, "validate", *args], env=env, capture_output=True, text=True, timeout=300)


def test_files_are_validated_against_program_and_stored_profiles(client, settings, tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "StructureDefinition-member.json").write_text(json.dumps(PROGRAM_PROFILE))
    assert client.put("/fhir/StructureDefinition/stored-member", json=STORED_PROFILE,
                      headers=FHIR_JSON).status_code == 201
    member = tmp_path / "member.json"
    member.write_text(json.dumps({"resourceType": "Patient", "meta": {"profile": [PROGRAM_PROFILE["url"]]}}))
    result = run(settings, profiles, str(member), "--profile", STORED_PROFILE["url"])
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if ": error " in line]
    assert sorted(errors) == ["member.json: error required Patient.birthDate: birthDate is required: at least 1 "
                              "expected, 0 found",
                              "member.json: error required Patient.gender: gender is required: at least 1 "
                              "expected, 0 found"]
    lines = tmp_path / "members.ndjson"
    lines.write_text(json.dumps({"resourceType": "Patient", "meta": {"profile": [PROGRAM_PROFILE["url"]]},
                                 "birthDate": "1950-02-01"}) + "\n")
    assert run(settings, profiles, str(lines)).returncode == 0


def test_a_file_that_is_not_json_exits_2(settings, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = run(settings, tmp_path, str(broken))
    assert result.returncode == 2 and "invalid JSON" in result.stderr
