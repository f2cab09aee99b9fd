"""`fhir-server terminology load` through the real entry point, on SQLite and PostgreSQL: the R4
specification's own CodeSystems and ValueSets, and NPM-format packages, loaded once and then left alone."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from conftest import BASE_URL

CLI = [sys.executable, "-m", "typer", "fhir_server.cli", "run"]
FIXTURES = json.loads((Path(__file__).resolve().parents[1] / "data" / "terminology" / "fixtures.json").read_text())
TERMINOLOGY = [r for r in FIXTURES["resources"] if r["resourceType"] in ("CodeSystem", "ValueSet", "ConceptMap")]


def run(settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FHIR_DATABASE_URL": settings.database_url, "FHIR_BASE_URL": BASE_URL,
           "COLUMNS": "200"}
    return subprocess.run([*CLI, "terminology", "load", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def npm_package(path: Path, resources: list[dict], extra: dict[str, bytes] | None = None) -> Path:
    """An NPM-format FHIR package: package/package.json and one resource per file."""
    files = {"package/package.json": json.dumps({"name": "example.fixture", "version": "1.0.0"}).encode(),
             "package/other/ignored.json": b"{}",
             **{f"package/{r['resourceType']}-{r['id']}.json": json.dumps(r).encode() for r in resources},
             **(extra or {})}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def summary(result: subprocess.CompletedProcess) -> list[int]:
    """created, updated, unchanged, failed from the summary table."""
    row = next(line for line in result.stderr.splitlines() if line.strip().startswith("│") and
               any(c.isdigit() for c in line))
    return [int(cell) for cell in row.replace("│", " ").split()]


def test_a_package_loads_once_and_its_terminology_answers(client, settings, tmp_path):
    package = npm_package(tmp_path / "fixture.tgz", TERMINOLOGY)
    first = run(settings, "--no-base", "--package", str(package))
    assert first.returncode == 0, first.stderr
    assert summary(first) == [len(TERMINOLOGY), 0, 0, 0]
    again = run(settings, "--no-base", "--package", str(package))
    assert again.returncode == 0, again.stderr
    assert summary(again) == [0, 0, len(TERMINOLOGY), 0]
    expansion = client.get("/fhir/ValueSet/$expand", params={"url": "http://example.org/fhir/ValueSet/diabetes"})
    assert [c["code"] for c in expansion.json()["expansion"]["contains"]] == ["1110", "1111", "1112", "1113", "1114"]
    history = client.get("/fhir/ValueSet/diabetes/_history").json()
    assert len(history["entry"]) == 1  # the second load wrote nothing


def test_a_package_is_loaded_as_published_even_where_it_misses_a_profile_it_claims(client, settings, tmp_path):
    """As hl7.terminology.r4 7.0.1 does: CodeSystems that claim shareablecodesystem without a publisher. A
    client writing the same resource is still held to the profile it claims (FHIR_VALIDATION=claimed)."""
    shareable = {"resourceType": "CodeSystem", "id": "unpublished", "url": "http://example.org/CodeSystem/unpublished",
                 "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/shareablecodesystem"]},
                 "version": "1.0.0", "name": "Unpublished", "status": "active", "experimental": False,
                 "description": "no publisher", "caseSensitive": True, "content": "complete",
                 "concept": [{"code": "a", "display": "A"}]}
    result = run(settings, "--no-base", "--package", str(npm_package(tmp_path / "tho.tgz", [shareable])))
    assert result.returncode == 0, result.stderr
    assert summary(result) == [1, 0, 0, 0]
    lookup = client.get("/fhir/CodeSystem/$lookup", params={"system": shareable["url"], "code": "a"})
    assert lookup.status_code == 200, lookup.text
    refused = client.put("/fhir/CodeSystem/unpublished-copy", json={**shareable, "id": "unpublished-copy"},
                         headers={"Content-Type": "application/fhir+json"})
    assert refused.status_code == 422 and "publisher" in refused.text


def test_a_changed_resource_is_updated_and_bad_files_are_reported(client, settings, tmp_path):
    run(settings, "--no-base", "--package", str(npm_package(tmp_path / "v1.tgz", TERMINOLOGY)))
    changed = [{**r, "title": "Renamed"} if r["id"] == "diabetes" else r for r in TERMINOLOGY]
    package = npm_package(tmp_path / "v2.tgz", changed, extra={
        "package/ValueSet-broken.json": b"{not json",
        "package/ValueSet-no-id.json": json.dumps({"resourceType": "ValueSet", "status": "draft"}).encode()})
    result = run(settings, "--no-base", "--package", str(package))
    assert result.returncode == 1
    assert summary(result) == [0, 1, len(TERMINOLOGY) - 1, 2]
    assert "ValueSet-broken.json" in result.stderr and "invalid JSON" in result.stderr
    assert "ValueSet-no-id.json" in result.stderr and "needs an id" in result.stderr
    assert client.get("/fhir/ValueSet/diabetes").json()["title"] == "Renamed"


def test_the_specifications_own_terminology(client, settings):
    result = run(settings)
    assert result.returncode == 0, result.stderr
    created, _, _, failed = summary(result)
    assert failed == 0 and created > 2_000
    gender = client.get("/fhir/ValueSet/$expand",
                        params={"url": "http://hl7.org/fhir/ValueSet/administrative-gender"}).json()
    assert [c["code"] for c in gender["expansion"]["contains"]] == ["male", "female", "other", "unknown"]
    lookup = client.get("/fhir/CodeSystem/$lookup", params={
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "recurrence"}).json()
    properties = [{p["name"]: p for p in prop["part"]} for prop in lookup["parameter"] if prop["name"] == "property"]
    assert any(p["code"]["valueCode"] == "parent" and p["value"]["valueCode"] == "active" for p in properties)
