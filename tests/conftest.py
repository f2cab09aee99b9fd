"""Shared fixtures: every store and API test runs on SQLite and, when FHIR_TEST_POSTGRES_URL is set,
on PostgreSQL, each test session in a fresh database of its own."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, delete, text, update
from sqlalchemy.engine import make_url

from fhir_server.app import create_app
from fhir_server.config import AuthMode, Settings
from fhir_server.store.audit import GENESIS, audit_table, head_table
from fhir_server.store.tables import ALL_TABLES

BASE_URL = "http://testserver/fhir"
POSTGRES_URL = os.environ.get("FHIR_TEST_POSTGRES_URL")
SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPORA = SHARED / "corpora"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database next to FHIR_TEST_POSTGRES_URL's; drop it afterwards."""
    assert POSTGRES_URL
    name = f"careweave_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (and xdist worker), dropped at the end."""
    if not POSTGRES_URL:
        pytest.skip("FHIR_TEST_POSTGRES_URL is not set: the PostgreSQL runs are skipped")
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request, tmp_path_factory) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("postgres_database")
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite')}/fhir.sqlite3"


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Open mode: these tests exercise the FHIR API itself; the `smart` fixture and tests/auth take tokens.
    return Settings(database_url=database_url, base_url=BASE_URL, log_level="WARNING", auth_mode=AuthMode.open)


@pytest.fixture(scope="session")
def app_client(settings: Settings) -> Iterator[TestClient]:
    from fhir_server.store.db import make_engine
    from fhir_server.store.migrate import upgrade

    upgrade(make_engine(settings.database_url))
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        yield client


@pytest.fixture
def engine(app_client: TestClient) -> Engine:
    return app_client.app.state.engine


@pytest.fixture
def client(app_client: TestClient, engine: Engine) -> TestClient:
    """The API over an empty database, with an empty audit log."""
    app_client.app.state.audit.flush()
    with engine.begin() as conn:
        for table in reversed(ALL_TABLES):
            conn.execute(delete(table))
        conn.execute(delete(audit_table))
        conn.execute(update(head_table).values(seq=0, hash=GENESIS))
    return app_client


@pytest.fixture
def served(client: TestClient, settings: Settings) -> Iterator:
    """Clients of apps with other settings (`served(validation=...)`), over the `client` fixture's (emptied)
    database."""
    opened: list[TestClient] = []

    def serve(**changes) -> TestClient:
        app_client = TestClient(create_app(settings.model_copy(update=changes)), base_url="http://testserver")
        opened.append(app_client.__enter__())
        return opened[-1]

    yield serve
    for app_client in opened:
        app_client.__exit__(None, None, None)


def pytest_report_header(config) -> str:
    corpora = "present" if CORPORA.is_dir() else "absent (corpus tests skip)"
    postgres = POSTGRES_URL or "not set (PostgreSQL runs skip)"
    return f"careweave: FHIR_TEST_POSTGRES_URL={postgres}; shared corpora {corpora}"


@pytest.fixture
def smart(settings: Settings, client, monkeypatch) -> Iterator[TestClient]:
    """The server in FHIR_AUTH_MODE=smart over the (emptied) test database; authlib's https-only rule is
    relaxed for the test host."""
    from fhir_server.config import AuthMode

    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with TestClient(create_app(settings.model_copy(update={"auth_mode": AuthMode.smart})),
                    base_url="http://testserver") as http:
        yield http
