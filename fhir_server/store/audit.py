"""The audit log: AuditEvents of who did what (auditevent.html; the shape of IHE's Basic Audit Log Patterns),
kept in a hash chain of our own.

- **Where.** Its own table, one row per event: the AuditEvent's JSON text exactly as hashed (text, not
  JSONB, which would reorder it) and a few columns taken from it, for the searches an auditor makes
  (`date`, `patient`, `agent`, `altid`, `entity`, `action`, `outcome`, `subtype`, `type`, `_id`). Events
  carry no index rows: a read costs one row of audit, not twenty.
- **The chain.** Row n's `hash` is SHA-256 over row n-1's hash, n, and row n's text. `audit_head` holds the
  last seq and hash. Editing a row's text breaks its hash, removing rows breaks the numbering or the link,
  removing the newest rows leaves the head ahead, and editing a column makes it disagree with the text.
  `verify` finds each. Someone who can rewrite every row after a change and the head can forge a chain:
  keep the head hash that `verify` prints somewhere else to catch that too.
- **Writing.** `AuditLog.record` only queues. A thread per worker writes batches, each in one
  transaction that holds `audit_head`'s row lock, so workers append one after another.
- **Reading.** Through the repository, only by a grant whose rule names AuditEvent (store/access.py), with
  neither scope criteria nor patient confinement. The log is append-only: update, patch and delete are 405.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from fhir_server.fhir import jsonio
from fhir_server.fhir.errors import FhirError, Issue, bad_request
from fhir_server.search.dates import format_instant, parse_instant
from fhir_server.search.index import index_rows
from fhir_server.search.parse import Criterion, SearchQuery
from fhir_server.search.values import DateValue, ReferenceValue, TokenValue
from fhir_server.store.access import Access
from fhir_server.store.db import unit_of_work
from fhir_server.store.tables import INDEX_TABLES, metadata
from fhir_server.store.tables import resource_table as R
from fhir_server.store.tables import version_table as V

log = logging.getLogger("fhir_server.audit")
GENESIS = "0" * 64

audit_table = Table(
    "audit_event", metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),  # numbered by append, under the head lock
    Column("id", String(64), nullable=False, unique=True),
    Column("recorded", DateTime, nullable=False),
    Column("type", String(64)),
    Column("subtype", String(64)),
    Column("action", String(1)),
    Column("outcome", String(2)),
    Column("patient", String(64)),  # the id of the Patient the event is about
    Column("agent", String(200)),  # the requestor's reference (Practitioner/x)
    Column("altid", String(100)),  # the requestor's user name
    Column("entity", String(200)),  # the resource touched, Type/id
    Column("content", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_event_recorded", "recorded"),
    Index("ix_audit_event_patient", "patient", "recorded"),
)
head_table = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True),  # one row, id 1, written by the migration
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
AUDIT_TABLES = (audit_table, head_table)
A = audit_table

# -- the events -------------------------------------------------------------------------------------------

CANONICAL = "https://careweave.example.org/fhir"
USERNAMES = f"{CANONICAL}/sid/username"  # identifier systems for who has no FHIR resource
CLIENT_IDS = f"{CANONICAL}/sid/client-id"


@dataclass(frozen=True)
class Actor:
    """Who made a request: the client, the signed-in user (with their Practitioner, `Practitioner/x`), the
    token's launch patient, and the network address."""

    client_id: str | None = None
    username: str | None = None
    fhir_user: str | None = None
    patient: str | None = None
    address: str | None = None


def event(id: str, when: datetime, type: dict, subtype: dict, action: str, status: int, actor: Actor | None,
          site: str, entities: list[dict]) -> dict:
    """An AuditEvent: the agents are the user (the requestor) and the client app (the requestor when no
    user signed in); the source is this server; the outcome follows the HTTP status. The parts that repeat
    (agents, source) are shared between events: they are only ever serialised."""
    outcome = "0" if status < 400 else "4" if status < 500 else "8"
    instant = f"{when:%Y-%m-%dT%H:%M:%S}.{when.microsecond // 1000:03d}Z"  # format_instant's, faster
    resource = {"resourceType": "AuditEvent", "id": id, "meta": {"versionId": "1", "lastUpdated": instant},
                "type": type, "subtype": [subtype], "action": action, "recorded": instant,
                "outcome": outcome, "outcomeDesc": f"HTTP {status}", "agent": _agents(actor), "source": _source(site)}
    if entities:
        resource["entity"] = entities
    return resource


_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def event_id() -> str:
    """A new event's id: random per process, then a counter (cheaper than a uuid4, as unique)."""
    return f"{_ID_PREFIX}-{next(_ID_COUNTER):x}"


@lru_cache(maxsize=8)
def _source(site: str) -> dict:
    return {"site": site, "observer": {"display": "CareWeave FHIR server"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                      "display": "Application Server"}]}


@lru_cache(maxsize=4096)
def _agents(actor: Actor | None) -> list[dict]:
    network = {"network": {"address": actor.address, "type": "2"}} if actor and actor.address else {}
    if actor is None or not (actor.username or actor.client_id):
        return [{"who": {"display": "anonymous: FHIR_AUTH_MODE=open"}, "requestor": True, **network}]
    agents = []
    if actor.username:
        who = {"reference": actor.fhir_user} if actor.fhir_user else {
            "identifier": {"system": USERNAMES, "value": actor.username}}
        agents.append({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "IRCP", "display": "information recipient"}]},
                       "who": who, "altId": actor.username, "requestor": True})
    if actor.client_id:
        agents.append({"type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM",
                                            "code": "110150", "display": "Application"}]},
                       "who": {"identifier": {"system": CLIENT_IDS, "value": actor.client_id}},
                       "requestor": not actor.username, **network})
    return agents


def columns_of(event: dict) -> dict:
    """The searchable columns of an AuditEvent, all taken from its content (so that `verify` can re-derive
    them and catch an edited column)."""
    agents = event.get("agent") or []
    requestor = next((a for a in agents if a.get("requestor")), agents[0] if agents else {})
    entities = [e for e in event.get("entity") or [] if (e.get("what") or {}).get("reference")]
    patients = [e["what"]["reference"] for e in entities if (e.get("role") or {}).get("code") == "1"] or [
        e["what"]["reference"] for e in entities if e["what"]["reference"].startswith("Patient/")]
    touched = [e["what"]["reference"] for e in entities if (e.get("role") or {}).get("code") != "1"]
    subtype = next(iter(event.get("subtype") or []), {})
    return {
        "id": event["id"], "recorded": _recorded(event["recorded"]),
        "type": _cut((event.get("type") or {}).get("code"), 64), "subtype": _cut(subtype.get("code"), 64),
        "action": event.get("action"), "outcome": event.get("outcome"),
        "patient": _cut(patients[0].removeprefix("Patient/"), 64) if patients else None,
        "agent": _cut((requestor.get("who") or {}).get("reference"), 200), "altid": _cut(requestor.get("altId"), 100),
        "entity": _cut("/".join(touched[0].split("/")[:2]), 200) if touched else None,  # without _history
    }


def _recorded(text: str) -> datetime:
    """`recorded` as naive UTC; the common full instant the fast way (the writer parses one per event)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return parse_instant(text)
    if moment.tzinfo is None:  # an instant has a zone; without one, the slower parser decides
        return parse_instant(text)
    return moment.astimezone(UTC).replace(tzinfo=None)


def _cut(value: str | None, size: int) -> str | None:
    """A column's value, cut to the column's size (a client's event may carry anything)."""
    return value[:size] if value else None


def chain_hash(previous: str, seq: int, content: str) -> str:
    return hashlib.sha256(f"{previous}\n{seq}\n{content}".encode()).hexdigest()


# -- append and verify ----------------------------------------------------------------------------------


_COLUMN_NAMES = ("seq", "id", "recorded", "type", "subtype", "action", "outcome", "patient", "agent", "altid",
                 "entity", "content", "hash")


def append(conn: Connection, events: list[dict]) -> None:
    """Append AuditEvents (each with `id` and `recorded`) to the chain, in one write transaction."""
    head = conn.execute(select(head_table.c.seq, head_table.c.hash).where(head_table.c.id == 1)
                        .with_for_update()).one()
    seq, previous = head.seq, head.hash
    rows = []
    for event in events:
        seq += 1
        content = jsonio.dumps(event)
        previous = chain_hash(previous, seq, content)
        columns = columns_of(event)
        rows.append((seq, *(columns[name] for name in _COLUMN_NAMES[1:-2]), content, previous))
    _insert(conn, rows)
    conn.execute(update(head_table).where(head_table.c.id == 1).values(seq=seq, hash=previous))


def _insert(conn: Connection, rows: list[tuple]) -> None:
    """The rows, by the driver's fastest way: COPY on PostgreSQL, executemany on SQLite (SQLAlchemy's
    per-row parameter handling cost more than everything else an event costs)."""
    names = ", ".join(_COLUMN_NAMES)
    if conn.dialect.name == "postgresql":
        with conn.connection.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY audit_event ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    # `recorded` as SQLAlchemy's SQLite DateTime writes it, so that it compares as the ORM's values do.
    rows = [(r[0], r[1], r[2].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[3:]) for r in rows]
    conn.exec_driver_sql(f"INSERT INTO audit_event ({names}) VALUES ({', '.join('?' * len(_COLUMN_NAMES))})", rows)


@dataclass(frozen=True)
class Verification:
    events: int
    head: str
    problems: tuple[str, ...]


def verify(conn: Connection, batch: int = 5000) -> Verification:
    """Walk the chain from the start; every break found, by seq."""
    problems: list[str] = []
    expected, previous = 0, GENESIS
    for row in _rows(conn, batch):
        expected += 1
        if row.seq != expected:
            problems.append(f"events {expected} to {row.seq - 1} are missing")
            expected = row.seq
        if chain_hash(previous, row.seq, row.content) != row.hash:
            problems.append(f"event {row.seq} ({row.id}) does not match its hash: it, or the one before, was changed")
        else:
            try:
                stored = {name: getattr(row, name) for name in ("id", "recorded", "type", "subtype", "action",
                                                                 "outcome", "patient", "agent", "altid", "entity")}
                if columns_of(jsonio.loads(row.content)) != stored:
                    problems.append(f"event {row.seq} ({row.id}): a column disagrees with the event's content")
            except (ValueError, KeyError, TypeError):
                problems.append(f"event {row.seq} ({row.id}): the content is not a readable AuditEvent")
        previous = row.hash
    head = conn.execute(select(head_table.c.seq, head_table.c.hash).where(head_table.c.id == 1)).one()
    if (head.seq, head.hash) != (expected, previous):
        problems.append(f"the head names event {head.seq} but the log ends at event {expected}: "
                        "the newest events were removed or the head was changed")
    return Verification(expected, head.hash, tuple(problems))


def _rows(conn: Connection, batch: int) -> Iterator:
    last = 0
    while True:
        rows = conn.execute(select(A).where(A.c.seq > last).order_by(A.c.seq).limit(batch)).all()
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].seq


# -- the writer -------------------------------------------------------------------------------------------


Made = Iterable[tuple[dict, str | None]]  # events, each with the resource whose Patient is to be looked up


class AuditLog:
    """Queues events and writes them from a thread of its own, in batches. The request only appends to a
    deque: an event, or a function that makes a request's events, called by the writer (building them
    costs more than the rest of a read). Events whose patient is not known when they are made (a read of an
    Observation) carry the resource to look up; the writer finds their patients with one query per batch."""

    BATCH = 500
    INTERVAL = 0.5  # seconds an event may wait in the queue
    LIMIT = 200_000  # queued events kept while the database is unreachable

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: deque[tuple[dict, str | None] | Callable[[], Made]] = deque()
        self._wake = threading.Event()
        self._writing = threading.Lock()
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0

    def record(self, event: dict, resolve: str | None = None) -> None:
        """Queue `event`; `resolve` names the resource (Type/id) whose Patient compartment it is about."""
        self._queue_item((event, resolve))

    def defer(self, make: Callable[[], Made]) -> None:
        """Queue a function that makes events, for the writer to call."""
        self._queue_item(make)

    def _queue_item(self, item) -> None:
        if self._thread is None:
            self._start()
        if len(self._queue) >= self.LIMIT:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("audit queue full: events are being dropped", extra={"fields": {"dropped": self.dropped}})
            return
        self._queue.append(item)
        if len(self._queue) >= self.BATCH:
            self._wake.set()

    def flush(self) -> None:
        """Write everything queued so far, now (before the log is read, and at shutdown)."""
        self._drain(full_batches_only=False)

    def _drain(self, *, full_batches_only: bool) -> None:
        """Write what is queued now, in batches, leaving what arrives meanwhile for the next round: chasing
        it would write many small batches, each paying a transaction's fixed costs."""
        with self._writing:
            remaining = len(self._queue)
            while remaining and (remaining >= self.BATCH or not full_batches_only):
                taken = min(self.BATCH, remaining)
                remaining -= taken
                batch: list[tuple[dict, str | None]] = []
                for _ in range(taken):
                    item = self._queue.popleft()
                    batch.extend(item() if callable(item) else (item,))
                try:
                    with unit_of_work(self.engine, write=True) as conn:
                        append(conn, _with_patients(conn, batch))
                except Exception:
                    log.exception("audit write failed; the events stay queued")
                    self._queue.extendleft(reversed(batch))
                    return

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _start(self) -> None:
        with self._started:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        """Full batches as soon as they are there; the rest once per INTERVAL."""
        last = time.monotonic()
        while not self._closed:
            self._wake.wait(self.INTERVAL)
            self._wake.clear()
            due = time.monotonic() - last >= self.INTERVAL
            self._drain(full_batches_only=not due)
            if due:
                last = time.monotonic()


CM = INDEX_TABLES["compartment"]


def _with_patients(conn: Connection, batch: list[tuple[dict, str | None]]) -> list[dict]:
    """The events, each whose resource is in a Patient compartment given that Patient as an entity.

    A reference `Type/id/_history/v` is looked up in the compartment rows if version v is still current,
    and otherwise (changed or deleted since the read) from version v itself, which is then indexed anew:
    the rare case pays, the usual one is one query per batch."""
    refs = {ref: ref.split("/") for _, ref in batch if ref}
    owners: dict[str, str | None] = {}
    if refs:
        ids_by_type: dict[str, set[str]] = {}
        for parts in refs.values():
            ids_by_type.setdefault(parts[0], set()).add(parts[1])
        # By type, then id: a (type, id) IN list of pairs is planned as a scan of the type's rows.
        wanted = or_(*(and_(CM.c.resource_type == t, CM.c.id.in_(sorted(ids))) for t, ids in ids_by_type.items()))
        rows = conn.execute(select(CM.c.resource_type, CM.c.id, func.min(CM.c.compartment_id), R.c.version_id)
                            .join(R, and_(R.c.resource_type == CM.c.resource_type, R.c.id == CM.c.id))
                            .where(CM.c.compartment_type == "Patient", wanted)
                            .group_by(CM.c.resource_type, CM.c.id, R.c.version_id)).all()
        current = {(t, i): (owner, version) for t, i, owner, version in rows}
        for ref, parts in refs.items():
            owner, version = current.get((parts[0], parts[1]), (None, None))
            if len(parts) == 4 and str(version) != parts[3]:
                owner = _owner_of_version(conn, parts[0], parts[1], parts[3])
            owners[ref] = owner
    events = []
    for event, ref in batch:
        if ref and owners.get(ref):
            event = {**event, "entity": [patient_entity(owners[ref]), *event.get("entity", [])]}
        events.append(event)
    return events


def _owner_of_version(conn: Connection, resource_type: str, id: str, version: str) -> str | None:
    if not version.isdigit():
        return None
    content = conn.execute(select(V.c.content).where(V.c.resource_type == resource_type, V.c.id == id,
                                                     V.c.version_id == int(version))).scalar()
    if not content:
        return None
    rows = index_rows(jsonio.loads(content), resource_type, id)["compartment"]
    return min((r["compartment_id"] for r in rows if r["compartment_type"] == "Patient"), default=None)


@lru_cache(maxsize=4096)
def patient_entity(patient_id: str) -> dict:
    """The entity naming the Patient an event is about (BALP: type Person, role Patient)."""
    return {"what": {"reference": f"Patient/{patient_id}"},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1",
                     "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1",
                     "display": "Patient"}}


# -- reading ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditRow:
    id: str
    recorded: datetime
    content: str


def require(access: Access, interaction: str) -> None:
    """Only a grant that names AuditEvent, without criteria or patients, reads the log."""
    access.require("AuditEvent", interaction)
    if access.needs_query("AuditEvent", interaction):
        raise FhirError(403, [Issue("forbidden", "the audit log is read with an unrestricted AuditEvent scope only")])


def read(conn: Connection, id: str) -> AuditRow | None:
    row = conn.execute(select(A.c.id, A.c.recorded, A.c.content).where(A.c.id == id)).first()
    return AuditRow(*row) if row else None


# Search parameters the log answers, by the column each one matches and the kind of value.
_COLUMNS = {"_id": (A.c.id, "token"), "date": (A.c.recorded, "date"), "patient": (A.c.patient, "patient"),
            "agent": (A.c.agent, "reference"), "altid": (A.c.altid, "token"), "entity": (A.c.entity, "reference"),
            "action": (A.c.action, "token"), "outcome": (A.c.outcome, "token"), "subtype": (A.c.subtype, "token"),
            "type": (A.c.type, "token")}


SEARCH_PARAMETERS = frozenset(_COLUMNS)


def search(conn: Connection, query: SearchQuery, count: int,
           cursor: str | None) -> tuple[list[AuditRow], str | None, int | None]:
    """A page of events, newest first unless `_sort=date`; its rows, the next page's cursor, and the total
    when `_total=accurate`."""
    if query.includes:
        raise bad_request("_include and _revinclude are not supported on AuditEvent", "_include")
    if any(k.name != "date" for k in query.sort) or len(query.sort) > 1:
        raise bad_request("AuditEvent sorts by date only", "_sort")
    ascending = bool(query.sort) and not query.sort[0].descending
    where = [_criterion(c) for c in query.criteria]
    total = None
    if query.total == "accurate":
        total = conn.execute(select(func.count()).select_from(A).where(*where)).scalar_one()
    keys = (A.c.recorded, A.c.seq)
    if cursor:
        when, seq = _cursor(cursor)
        if ascending:
            where.append(or_(A.c.recorded > when, and_(A.c.recorded == when, A.c.seq > seq)))
        else:
            where.append(or_(A.c.recorded < when, and_(A.c.recorded == when, A.c.seq < seq)))
    order = [k.asc() if ascending else k.desc() for k in keys]
    rows = conn.execute(select(A.c.id, A.c.recorded, A.c.content, A.c.seq).where(*where).order_by(*order)
                        .limit(count + 1)).all() if count else []
    following = f"{format_instant(rows[count - 1].recorded)}~{rows[count - 1].seq}" if len(rows) > count else None
    return [AuditRow(r.id, r.recorded, r.content) for r in rows[:count]], following, total


def _cursor(text: str) -> tuple[datetime, int]:
    when, _, seq = text.partition("~")
    try:
        return parse_instant(when), int(seq)
    except ValueError:
        raise bad_request("_cursor is not one this server gave", "_cursor") from None


def _criterion(criterion) -> object:
    if not isinstance(criterion, Criterion) or criterion.name not in _COLUMNS or criterion.modifier:
        name = getattr(criterion, "name", "a chained parameter")
        raise bad_request(f"{name} is not supported on AuditEvent; the audit log answers "
                          f"{', '.join(sorted(_COLUMNS))}, without modifiers", name)
    column, kind = _COLUMNS[criterion.name]
    return or_(*(_match(column, kind, value, criterion.name) for value in criterion.values))


def _match(column, kind: str, value, name: str):
    if kind == "date" and isinstance(value, DateValue):
        start, end = value.range.start, value.range.end
        return {"eq": and_(column >= start, column < end), "ne": or_(column < start, column >= end),
                "gt": column >= end, "sa": column >= end, "ge": column >= start, "lt": column < start,
                "eb": column < start, "le": column < end, "ap": and_(column >= start, column < end)}[value.prefix]
    if kind == "token" and isinstance(value, TokenValue) and value.code is not None:
        return column == value.code
    if kind in ("reference", "patient") and isinstance(value, ReferenceValue) and value.id is not None:
        if kind == "patient":
            return column == value.id if value.target_type in (None, "Patient") else false()
        return column == f"{value.target_type}/{value.id}" if value.target_type else column.like(f"%/{value.id}")
    raise bad_request(f"{name}: this form of value is not supported on AuditEvent", name)
