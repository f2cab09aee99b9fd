"""The whole shared Synthea R4 corpus (617 transaction Bundles, 191,093 resources) loads with zero failures,
through `fhir-server load` and through POSTed transactions, and every reference in the stored data resolves."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BASE_URL, CORPORA, POSTGRES_URL, fresh_postgres_database
from fastapi.testclient import TestClient
from fhirjson import FHIR_JSON
from sqlalchemy import Engine, text

from fhir_server.app import create_app
from fhir_server.config import AuthMode, Settings
from fhir_server.store.db import make_engine
from fhir_server.store.migrate import upgrade

CORPUS = CORPORA / "synthea-r4.tar.gz"
RESOURCES = 191_093
BUNDLES = 617
pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.exists(), reason=f"shared corpus missing: {CORPUS} (../shared is absent)"),
]


def unresolved_references(engine: Engine) -> list[str]:
    """References in current resources that do not name a current resource of this server."""
    if engine.dialect.name == "postgresql":
        refs_sql = ("SELECT DISTINCT r #>> '{}' FROM resource, "
                    "jsonb_path_query(content, 'strict $.**.reference') AS r WHERE NOT deleted")
    else:
        refs_sql = ("SELECT DISTINCT j.value FROM resource, json_tree(resource.content) AS j "
                    "WHERE j.key = 'reference' AND NOT resource.deleted")
    with engine.connect() as conn:
        references = [row[0] for row in conn.execute(text(refs_sql))]
        known = {f"{t}/{i}" for t, i in conn.execute(text("SELECT resource_type, id FROM resource WHERE NOT deleted"))}
    return [ref for ref in references if not ref.startswith("#") and ref not in known]


def count_resources(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM resource WHERE NOT deleted")).scalar_one()


def test_cli_load_of_the_whole_corpus(tmp_path):
    url = f"sqlite:///{tmp_path}/corpus.sqlite3"
    env = {**os.environ, "FHIR_DATABASE_URL": url, "FHIR_BASE_URL": BASE_URL}
    cli = [sys.executable, "-m", "typer", "fhir_server.cli", "run"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
    result = subprocess.run([*cli, "load", str(CORPUS)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{RESOURCES}" in result.stderr and "failed" in result.stderr
    engine = make_engine(url)
    assert count_resources(engine) == RESOURCES
    assert unresolved_references(engine) == []


@pytest.fixture
def corpus_database(tmp_path) -> Iterator[str]:
    """A database of its own: PostgreSQL when CI provides it (the production backend), else SQLite."""
    if POSTGRES_URL:
        with fresh_postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path}/posted.sqlite3"


def test_post_every_bundle_as_a_transaction(corpus_database):
    settings = Settings(database_url=corpus_database, base_url=BASE_URL, log_level="WARNING",
                        auth_mode=AuthMode.open)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    failures, bundles = [], 0
    with TestClient(create_app(settings), base_url="http://testserver") as client, tarfile.open(CORPUS) as tar:
        for member in tar:
            if not member.isfile():
                continue
            bundles += 1
            response = client.post("/fhir", content=tar.extractfile(member).read(), headers=FHIR_JSON)
            if response.status_code != 200:
                failures.append(f"{Path(member.name).name}: {response.status_code} {response.text[:300]}")
    assert failures == []
    assert bundles == BUNDLES
    assert count_resources(engine) == RESOURCES
    assert unresolved_references(engine) == []
