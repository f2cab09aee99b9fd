"""Two writers creating the same resource at once: no lost update, no 500 (http.html#concurrency)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from fhir_server.fhir.errors import FhirError
from fhir_server.store.repository import open_repository


def _wait_for_lock_waiter(engine) -> None:
    """Block until another session of this database waits on a lock (PostgreSQL only)."""
    for _ in range(500):
        with engine.connect() as conn:
            waiting = conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND datname = current_database()")).scalar_one()
        if waiting:
            return
        time.sleep(0.01)
    pytest.fail("the second writer never waited for the first")


def test_racing_creates_of_one_id(client, engine):
    first_flushed, release_first = threading.Event(), threading.Event()
    outcome: dict = {}

    def first() -> None:
        with open_repository(engine, write=True) as repo:
            repo.update("Patient", "race", {"resourceType": "Patient", "id": "race", "gender": "male"})
            repo.flush()
            first_flushed.set()
            release_first.wait(30)

    def second() -> None:
        try:
            with open_repository(engine, write=True) as repo:
                stored, created = repo.update("Patient", "race", {"resourceType": "Patient", "id": "race",
                                                                  "gender": "female"})
            outcome["result"] = (stored.version_id, created)  # committed
        except FhirError as exc:
            outcome["error"] = exc.status

    a = threading.Thread(target=first)
    a.start()
    assert first_flushed.wait(30)
    b = threading.Thread(target=second)
    b.start()
    if engine.dialect.name == "postgresql":
        _wait_for_lock_waiter(engine)  # B's insert waits on A's uncommitted row
    release_first.set()
    a.join(30)
    b.join(30)
    read = client.get("/fhir/Patient/race")
    if engine.dialect.name == "postgresql":
        # B could not see A's row when it looked, so its insert collides: a 409, never a silent overwrite.
        assert outcome == {"error": 409}
        assert read.json()["gender"] == "male"
    else:
        # SQLite serialises writers from BEGIN IMMEDIATE, so B runs after A and updates its version.
        assert outcome == {"result": (2, False)}
        assert read.json()["meta"]["versionId"] == "2"
