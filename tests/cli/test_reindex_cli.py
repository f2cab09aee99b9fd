"""`fhir-server reindex` and the reindex that `migrate` runs when SearchParameters change (docs/search.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import BASE_URL
from sqlalchemy import delete, func, insert, select

from fhir_server.store.db import make_engine
from fhir_server.store.migrate import upgrade
from fhir_server.store.reindex import digest
from fhir_server.store.tables import ALL_TABLES, INDEX_TABLES, index_state_table, resource_table

CLI = [sys.executable, "-m", "typer", "fhir_server.cli", "run"]
PATIENT = '{"resourceType": "Patient", "id": "p1", "name": [{"family": "Zamora"}], "gender": "female"}'


@pytest.fixture
def env(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        for table in (*reversed(ALL_TABLES), index_state_table):
            conn.execute(delete(table))
    engine.dispose()
    return {**os.environ, "FHIR_DATABASE_URL": database_url, "FHIR_BASE_URL": BASE_URL}


def run(env, *args):
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)


def index_row_count(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = sum(conn.execute(select(func.count()).select_from(t)).scalar_one() for t in INDEX_TABLES.values())
    engine.dispose()
    return n


def wipe_index(url: str, *, forget_state: bool) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for table in INDEX_TABLES.values():
            conn.execute(delete(table))
        if forget_state:
            conn.execute(delete(index_state_table))
    engine.dispose()


@pytest.fixture
def loaded(env, tmp_path, database_url):
    path = tmp_path / "patient.json"
    path.write_text(PATIENT)
    assert run(env, "load", str(path)).returncode == 0
    rows = index_row_count(database_url)
    assert rows > 0
    return rows


def test_reindex_rebuilds_lost_rows(env, loaded, database_url):
    wipe_index(database_url, forget_state=False)
    result = run(env, "reindex", "--type", "Patient")
    assert result.returncode == 0, result.stderr
    assert "reindexed 1 resources" in result.stderr
    assert index_row_count(database_url) == loaded


def test_reindex_refuses_an_unknown_type(env):
    result = run(env, "reindex", "--type", "Patientt")
    assert result.returncode == 2
    assert "Patientt" in result.stderr


def test_migrate_reindexes_types_whose_parameters_changed(env, loaded, database_url):
    wipe_index(database_url, forget_state=False)
    engine = make_engine(database_url)
    with engine.begin() as conn:  # Patient's rows are recorded as made with other parameters
        conn.execute(delete(index_state_table))
        conn.execute(insert(index_state_table), [{"resource_type": "Patient", "digest": "old"}])
    engine.dispose()
    result = run(env, "migrate")
    assert result.returncode == 0, result.stderr
    assert "reindexed 1 resources" in result.stderr
    assert index_row_count(database_url) == loaded
    engine = make_engine(database_url)
    with engine.connect() as conn:
        recorded = dict(conn.execute(select(index_state_table.c.resource_type, index_state_table.c.digest)).all())
        assert conn.execute(select(func.count()).select_from(resource_table)).scalar_one() == 1
    engine.dispose()
    assert recorded["Patient"] == digest("Patient")
    # Nothing is stale now: a second migrate reindexes nothing.
    assert "reindexed" not in run(env, "migrate").stderr
