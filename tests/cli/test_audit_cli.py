"""`fhir-server audit verify` through the real entry point, on SQLite and PostgreSQL: the hash chain of
store/audit.py holds for events recorded over HTTP and by writers racing each other, and any edited,
removed or truncated row is found."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from conftest import BASE_URL
from sqlalchemy import delete, func, select, update

from fhir_server.store.audit import GENESIS, AuditLog, audit_table, chain_hash, head_table

CLI = [sys.executable, "-m", "typer", "fhir_server.cli", "run"]
A = audit_table


def verify(settings) -> subprocess.CompletedProcess:
    env = {**os.environ, "FHIR_DATABASE_URL": settings.database_url, "FHIR_BASE_URL": BASE_URL}
    return subprocess.run([*CLI, "audit", "verify"], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def recorded(client, engine, settings):
    """Events recorded by real requests, written to the log."""
    client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"},
               headers={"Content-Type": "application/fhir+json"})
    for _ in range(5):
        assert client.get("/fhir/Patient/p1").status_code == 200
    client.app.state.audit.flush()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(A)).scalar_one() == 6
    return engine


def test_an_intact_chain_verifies(recorded, settings):
    result = verify(settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 events, chain intact" in result.stdout


def tamper(engine, statement) -> None:
    with engine.begin() as conn:
        conn.execute(statement)


@pytest.mark.parametrize(("change", "found"), [
    (lambda: update(A).where(A.c.seq == 3).values(content=A.c.content + " "), "event 3"),
    (lambda: update(A).where(A.c.seq == 3).values(patient="someone-else"), "a column disagrees"),
    (lambda: delete(A).where(A.c.seq == 2), "events 2 to 2 are missing"),
    (lambda: delete(A).where(A.c.seq == 6), "the newest events were removed"),
    (lambda: update(head_table).values(seq=0, hash=GENESIS), "the newest events were removed"),
], ids=["edited content", "edited column", "removed row", "removed newest row", "reset head"])
def test_verify_fails_on_a_tampered_log(recorded, settings, change, found):
    tamper(recorded, change())
    result = verify(settings)
    assert result.returncode == 1, result.stdout
    assert found in result.stderr


def test_a_rehashed_row_still_breaks_the_next_link(recorded, settings):
    """Recomputing the edited row's own hash is not enough: the next row was chained to the old one."""
    with recorded.begin() as conn:
        row = conn.execute(select(A).where(A.c.seq == 2)).one()
        before = conn.execute(select(A.c.hash).where(A.c.seq == 1)).scalar_one()
        content = row.content.replace('"R"', '"C"')
        conn.execute(update(A).where(A.c.seq == 2).values(content=content, action="C",
                                                          hash=chain_hash(before, 2, content)))
    result = verify(settings)
    assert result.returncode == 1 and "event 3" in result.stderr


def test_writers_racing_keep_one_chain(client, engine, settings):
    """Two workers' writers appending at once: the head's row lock orders them into one chain."""
    writers = [AuditLog(engine), AuditLog(engine)]
    sample = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "action": "R", "recorded":
              "2026-11-28T00:00:00Z", "agent": [{"who": {"display": "x"}, "requestor": True}],
              "source": {"observer": {"display": "CareWeave"}}}

    def write(log: AuditLog, n: int) -> None:
        for i in range(n):
            log.record({**sample, "id": f"{id(log)}-{i}"})
            if i % 50 == 49:
                log.flush()
        log.flush()

    threads = [threading.Thread(target=write, args=(w, 300)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in writers:
        w.close()
    result = verify(settings)
    assert result.returncode == 0, result.stdout
    assert "600 events, chain intact" in result.stdout
