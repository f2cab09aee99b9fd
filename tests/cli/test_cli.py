"""The `fhir-server` command through its real entry point, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import BASE_URL
from sqlalchemy import delete, text

from fhir_server.store.db import make_engine
from fhir_server.store.migrate import is_current, upgrade
from fhir_server.store.tables import ALL_TABLES

CLI = [sys.executable, "-m", "typer", "fhir_server.cli", "run"]


@pytest.fixture
def env(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        for table in reversed(ALL_TABLES):
            conn.execute(delete(table))
    engine.dispose()
    return {**os.environ, "FHIR_DATABASE_URL": database_url, "FHIR_BASE_URL": BASE_URL}


def run(env, *args):
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)


def count(database_url, resource_type):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM resource WHERE resource_type = :t AND NOT deleted"),
                         {"t": resource_type}).scalar_one()
    engine.dispose()
    return n


def test_migrate_creates_the_schema(tmp_path):
    url = f"sqlite:///{tmp_path}/new.sqlite3"
    result = run({**os.environ, "FHIR_DATABASE_URL": url}, "migrate")
    assert result.returncode == 0, result.stderr
    assert is_current(make_engine(url))


def test_bad_setting_is_reported_by_name(tmp_path):
    result = run({**os.environ, "FHIR_DATABASE_URL": "mysql://x/y"}, "migrate")
    assert result.returncode == 2
    assert "FHIR_DATABASE_URL" in result.stderr
    result = run({**os.environ, "FHIR_BASE_URL": "not-a-url"}, "migrate")
    assert result.returncode == 2
    assert "FHIR_BASE_URL" in result.stderr


def test_load_bundles_resources_and_ndjson(env, database_url, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "one.json").write_text(json.dumps({"resourceType": "Organization", "id": "org-a", "name": "A"}))
    (folder / "tx.json").write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Condition", "subject": {"reference": "urn:uuid:1"}},
         "request": {"method": "POST", "url": "Condition"}}]}))
    lines = [{"resourceType": "Practitioner", "id": f"pr-{i}"} for i in range(3)] + [{"resourceType": "Practitioner",
                                                                                     "bogus": 1}]
    (folder / "practitioners.ndjson").write_text("\n".join(json.dumps(x) for x in lines) + "\n[1, 2]\n{oops\n")
    (folder / "broken.json").write_text("{not json")
    result = run(env, "load", str(folder))
    assert result.returncode == 1  # two inputs failed
    assert "'bogus' is not an element of Practitioner" in result.stderr
    assert "broken.json" in result.stderr
    assert "practitioners.ndjson line 5: not a JSON object" in result.stderr
    assert "practitioners.ndjson line 6: invalid JSON" in result.stderr
    assert count(database_url, "Practitioner") == 3
    assert count(database_url, "Patient") == 1
    assert count(database_url, "Condition") == 1
    again = run(env, "load", str(folder / "one.json"))
    assert again.returncode == 0
    assert "│       0 │       1 │      0 │" in again.stderr  # the reload is an update


def test_failed_transaction_in_load_writes_nothing(env, database_url, tmp_path):
    bundle = tmp_path / "bad.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "gender": 3}, "request": {"method": "POST", "url": "Patient"}}]}))
    result = run(env, "load", str(bundle))
    assert result.returncode == 1
    assert "Bundle.entry[1]" in result.stderr
    assert count(database_url, "Patient") == 0


def test_seed_demo_once(env, database_url):
    first = run(env, "seed-demo", "--members", "5", "--seed", "3", "--once")
    assert first.returncode == 0, first.stderr
    assert count(database_url, "Patient") == 5
    again = run(env, "seed-demo", "--members", "5", "--seed", "3", "--once")
    assert again.returncode == 0
    assert "already loaded" in again.stderr
