"""Engines and units of work for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _json_text(value: object) -> object:
    # The repository serialises once with orjson; the driver must not serialise again.
    return value


def _json_raw(value: object) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray, memoryview)) and not isinstance(value, str) \
        else value  # type: ignore[return-value]


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """Create the engine for `url` with the settings each backend needs for concurrent FHIR writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    engine = create_engine(
        # No pre-ping: it costs a round trip per request. A connection found dead fails that one request
        # (503) and the pool drops it; pool_recycle retires connections before idle timeouts bite.
        url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, hide_parameters=True,
        json_serializer=_json_text, json_deserializer=_json_raw,
    )

    @event.listens_for(engine, "connect")
    def _raw_jsonb(dbapi_conn, _record):  # read JSONB as text: reads serve the stored bytes unparsed
        from psycopg.types.string import TextLoader
        dbapi_conn.adapters.register_loader("jsonb", TextLoader)
        dbapi_conn.adapters.register_loader("json", TextLoader)

    return engine


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    memory = parsed.database in (None, "", ":memory:")
    if not memory:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        hide_parameters=True,  # statement values are health information; keep them out of error messages
        poolclass=StaticPool if memory else None,
        json_serializer=_json_text, json_deserializer=_json_raw,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        # Transactions are begun by us (below), so pysqlite's implicit BEGIN is switched off.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection):
        # Writers take the write lock up front: a deferred transaction that later writes can fail with
        # SQLITE_BUSY at once instead of waiting, under several workers.
        mode = "IMMEDIATE" if conn.get_execution_options().get("fhir_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@contextmanager
def unit_of_work(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """One database transaction: committed when the block ends, rolled back if it raises.

    Reads on PostgreSQL run in autocommit instead: BEGIN and COMMIT would be two more round trips per
    request. A read or a search page (with its total) is one statement and so one snapshot; the
    statements that follow a page (`_include`, the count of a later page) may see later commits.
    """
    if not write and engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            yield conn
        return
    with engine.connect().execution_options(fhir_write=write) as conn:
        with conn.begin():
            yield conn


def database_label(engine: Engine) -> str:
    """Backend and database name for logs, without credentials."""
    return f"{engine.dialect.name}:{os.path.basename(str(engine.url.database or 'memory'))}"
