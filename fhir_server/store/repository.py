"""The Repository: one method per FHIR interaction (http.html), inside one database transaction.

Writes validate the resource structurally, stamp `meta.versionId`/`meta.lastUpdated`, store the canonical
JSON text once, append a version row and refresh the search index rows. Inserts of new rows are buffered
and sent with executemany before the next read and before commit, so a transaction bundle of creates
costs a handful of round trips.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Protocol

import jsonpatch
from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from fhir_server.fhir import jsonio
from fhir_server.fhir.errors import (
    FhirError,
    Issue,
    bad_request,
    conflict,
    gone,
    not_found,
    precondition_failed,
    unprocessable,
)
from fhir_server.fhir.models import ID_PATTERN, validate_resource
from fhir_server.fhir.search_parameters import compartment_types
from fhir_server.search.dates import format_instant
from fhir_server.search.index import TABLES, index_rows
from fhir_server.search.parse import Include, SearchQuery
from fhir_server.store import audit
from fhir_server.store import cursor as cursor_codec
from fhir_server.store import include as include_sql
from fhir_server.store import query as sql
from fhir_server.store.access import ALL, Access, visible
from fhir_server.store.db import unit_of_work
from fhir_server.store.shapes import SHAPES
from fhir_server.store.tables import INDEX_TABLES
from fhir_server.store.tables import resource_table as R
from fhir_server.store.tables import version_table as V
from fhir_server.store.terminology import StoredTerminology, needs_terminology, with_codes
from fhir_server.store.validation import check_write
from fhir_server.store.validation import validate as validate_profiles


@dataclass(frozen=True)
class StoredResource:
    """One version of a resource as stored; `content` is its JSON text, None for a deletion."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    content: str | None
    method: str = "PUT"
    seq: int | None = None
    # The Patient compartments a write left it in (a deletion: the ones it was in), for the audit log;
    # None where not looked at.
    patients: tuple[str, ...] | None = None

    @property
    def deleted(self) -> bool:
        return self.content is None

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    @property
    def last_modified(self) -> str:
        """RFC 7231 HTTP-date for the Last-Modified header."""
        return format_datetime(self.last_updated.replace(tzinfo=UTC), usegmt=True)

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"

    def resource(self) -> dict:
        """The parsed body; only for callers that must change or filter it."""
        if self.content is None:
            raise ValueError("a deleted version has no body")
        return jsonio.loads(self.content)


@dataclass(frozen=True)
class SearchPage:
    resources: list[StoredResource]
    total: int | None
    next_cursor: str | None = None
    prev_cursor: str | None = None
    included: list[StoredResource] = field(default_factory=list)


class Repository(Protocol):
    """The FHIR interactions over storage; features depend on this protocol, not on SQL."""

    def read(self, resource_type: str, id: str) -> StoredResource: ...
    def vread(self, resource_type: str, id: str, version_id: str) -> StoredResource: ...
    def create(self, resource: dict, *, if_none_exist: SearchQuery | None = None,
               id: str | None = None) -> tuple[StoredResource, bool]: ...
    def update(self, resource_type: str, id: str, resource: dict, *,
               if_match: str | None = None) -> tuple[StoredResource, bool]: ...
    def conditional_update(self, query: SearchQuery, resource: dict, *, new_id: str | None = None,
                           if_match: str | None = None) -> tuple[StoredResource, bool]: ...
    def patch(self, resource_type: str, id: str, operations: object, *,
              if_match: str | None = None) -> StoredResource: ...
    def delete(self, resource_type: str, id: str) -> StoredResource | None: ...
    def conditional_delete(self, query: SearchQuery) -> StoredResource | None: ...
    def history(self, resource_type: str | None = None, id: str | None = None, *, since: datetime | None = None,
                at: datetime | None = None, count: int = 50, before_seq: int | None = None
                ) -> list[StoredResource]: ...
    def search(self, query: SearchQuery, *, count: int, cursor: str | None = None) -> SearchPage: ...
    def match_ids(self, query: SearchQuery, limit: int = 2) -> list[str]: ...
    def validate(self, resource: dict, profiles: tuple[str, ...] = ()) -> list[Issue]: ...
    def savepoint(self): ...


# The read by id is the hottest statement: it is sent as driver SQL, which skips SQLAlchemy's statement
# building and caching (a quarter of the read's cost). Values come back as the driver gives them.
_POINT_READ = {
    "postgresql": "SELECT version_id, last_updated, content FROM resource WHERE resource_type = %(rt)s AND id = %(id)s",
    "sqlite": "SELECT version_id, last_updated, content FROM resource WHERE resource_type = :rt AND id = :id",
}
_CURRENT_FOR_UPDATE = select(R.c.version_id, R.c.last_updated, R.c.content).where(
    R.c.resource_type == bindparam("rt"), R.c.id == bindparam("id")).with_for_update()


# `_include:iterate` follows references this many steps at most, and a page includes at most this many.
MAX_INCLUDE_DEPTH = 4
MAX_INCLUDED = 5000


CM = INDEX_TABLES["compartment"]
AUDIT = "AuditEvent"  # kept in the audit log's own table (store/audit.py), not with the other resources


# A feature's rule on writes of one resource type, given the type, the current version (None for a new
# resource) and the version to be written; it raises FhirError to refuse the write. Rules come from the
# layers above, by resource type, so that other writes pay nothing for them.
WriteRule = Callable[[str, dict | None, dict], None]
WriteRules = dict[str, tuple[WriteRule, ...]]


def new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    moment = datetime.now(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def parse_etag(value: str) -> int:
    """`W/"3"` or `"3"` -> 3 (http.html#concurrency)."""
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise bad_request(f"If-Match must be an ETag such as W/\"3\", not {value!r}")
    return int(text)


class SqlRepository:
    """Repository over one SQLAlchemy connection whose transaction the caller owns."""

    def __init__(self, conn: Connection, base_url: str = "", access: Access = ALL, validation: str = "off",
                 rules: WriteRules | None = None) -> None:
        self.conn = conn
        self.base_url = base_url
        self.access = access
        self.validation = validation
        self.rules = rules or {}
        self._postgresql = conn.dialect.name == "postgresql"
        self._for_update = self._postgresql
        self._new_resources: list[dict] = []
        self._new_versions: list[dict] = []
        self._new_rows: dict[str, list[dict]] = {t: [] for t in TABLES}
        self._pending = False

    # -- buffered inserts -------------------------------------------------------------------------
    def flush(self) -> None:
        """Send buffered inserts; a duplicate id raced in by another writer is a 409."""
        if not self._pending:
            return
        resources, versions, rows = self._new_resources, self._new_versions, self._new_rows
        self._discard()
        try:
            if resources:
                self.conn.execute(insert(R), resources)
            if versions:
                self.conn.execute(insert(V), versions)
            for table, table_rows in rows.items():
                if table_rows:
                    self.conn.execute(insert(INDEX_TABLES[table]), table_rows)
        except IntegrityError as exc:
            raise conflict("a resource with this id was written concurrently; retry the request") from exc

    def _discard(self) -> None:
        self._new_resources, self._new_versions = [], []
        self._new_rows = {t: [] for t in TABLES}
        self._pending = False

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction, for batch entries that fail alone (http.html#brules)."""
        self.flush()
        nested = self.conn.begin_nested()
        try:
            yield
            self.flush()
        except BaseException:
            self._discard()
            nested.rollback()
            raise
        nested.commit()

    # -- reads --------------------------------------------------------------------------------------
    def _current(self, resource_type: str, id: str, *, for_update: bool = False) -> StoredResource | None:
        """The current row; `for_update` locks it on PostgreSQL until the transaction ends."""
        self.flush()
        params = {"rt": resource_type, "id": id}
        if for_update and self._for_update:
            row = self.conn.execute(_CURRENT_FOR_UPDATE, params).first()
        else:
            row = self.conn.exec_driver_sql(_POINT_READ[self.conn.dialect.name], params).first()
        if row is None:
            return None
        last_updated = row[1] if isinstance(row[1], datetime) else datetime.fromisoformat(row[1])
        return StoredResource(resource_type, id, row[0], last_updated, row[2])

    def read(self, resource_type: str, id: str) -> StoredResource:
        """read (http.html#read): the current version; 404 if unknown, 410 if deleted."""
        if resource_type == AUDIT:
            return self._audit_event(id)
        return self._existing(resource_type, id, interaction="r")

    def _existing(self, resource_type: str, id: str, *, for_update: bool = False,
                  interaction: str) -> StoredResource:
        """The current version, if the grant lets `interaction` reach it: what it may not reach is a 404,
        like what does not exist, so a refusal does not tell that the resource is there."""
        self.access.require(resource_type, interaction)
        current = self._current(resource_type, id, for_update=for_update)
        if current is None or not self._visible(current, interaction):
            raise not_found(f"{resource_type}/{id} is not known")
        if current.deleted:
            err = gone(f"{resource_type}/{id} was deleted")
            err.headers.update({"ETag": current.etag, "Last-Modified": current.last_modified})
            raise err
        return current

    def _visible(self, current: StoredResource, interaction: str) -> bool:
        """Whether the grant lets `interaction` reach this resource as it is now stored (store/access.py).

        A deleted resource has no index rows, so a grant confined to patients' compartments sees no
        deletion: it gets 404 where an unrestricted one gets 410.
        """
        if not self.access.needs_query(current.resource_type, interaction):
            return True
        self.flush()
        stmt = select(R.c.id).where(R.c.resource_type == current.resource_type, R.c.id == current.id,
                                    visible(self.access, R, interaction, _now(), sql.condition))
        return self.conn.execute(stmt).first() is not None

    def vread(self, resource_type: str, id: str, version_id: str) -> StoredResource:
        """vread (http.html#vread): one version; 410 for the version that records a deletion.

        A restricted grant reads old versions of what it may read now.
        """
        if resource_type == AUDIT:  # an audit event has one version
            stored = self._audit_event(id)
            if version_id != "1":
                raise not_found(f"{resource_type}/{id} has no version {version_id!r}")
            return stored
        self.flush()
        if not self.access.unrestricted:
            self._existing(resource_type, id, interaction="r")
        if not version_id.isdigit():
            raise not_found(f"{resource_type}/{id} has no version {version_id!r}")
        row = self.conn.execute(
            select(V.c.last_updated, V.c.content, V.c.method).where(
                V.c.resource_type == resource_type, V.c.id == id, V.c.version_id == int(version_id)
            )
        ).first()
        if row is None:
            raise not_found(f"{resource_type}/{id} has no version {version_id}")
        stored = StoredResource(resource_type, id, int(version_id), row.last_updated, row.content, row.method)
        if stored.deleted:
            err = gone(f"version {version_id} of {resource_type}/{id} records its deletion")
            err.headers.update({"ETag": stored.etag, "Last-Modified": stored.last_modified})
            raise err
        return stored

    # -- writes -------------------------------------------------------------------------------------
    def _stamp(self, resource: dict, resource_type: str, id: str, version_id: int, when: datetime) -> str:
        meta = dict(resource.get("meta") or {})
        meta["versionId"] = str(version_id)
        meta["lastUpdated"] = format_instant(when)
        body = {"resourceType": resource_type, "id": id, "meta": meta}
        body.update((k, v) for k, v in resource.items() if k not in body)
        return jsonio.dumps(body)

    def _index(self, resource_type: str, id: str, resource: dict) -> tuple[str, ...]:
        """Queue the resource's index rows; the Patient compartments it is in."""
        rows = index_rows(resource, resource_type, id, self.base_url)
        for table, table_rows in rows.items():
            self._new_rows[table].extend(table_rows)
        self._pending = True
        return tuple(r["compartment_id"] for r in rows["compartment"] if r["compartment_type"] == "Patient")

    def _unindex(self, resource_type: str, id: str) -> None:
        for table in INDEX_TABLES.values():
            self.conn.execute(delete(table).where(table.c.resource_type == resource_type, table.c.id == id))

    def _write(self, resource: dict, resource_type: str, id: str, previous: StoredResource | None,
               method: str) -> StoredResource:
        """Store a new version after `previous` (None: the resource is new)."""
        when = _now()
        version_id = 1 if previous is None else previous.version_id + 1
        content = self._stamp(resource, resource_type, id, version_id, when)
        if previous is None:
            self._new_resources.append({"resource_type": resource_type, "id": id, "version_id": version_id,
                                        "last_updated": when, "deleted": False, "content": content})
        else:
            result = self.conn.execute(
                update(R)
                .where(R.c.resource_type == resource_type, R.c.id == id, R.c.version_id == previous.version_id)
                .values(version_id=version_id, last_updated=when, deleted=False, content=content)
            )
            if result.rowcount != 1:
                raise conflict(f"{resource_type}/{id} was changed concurrently; retry the request")
            self._unindex(resource_type, id)
        self._pending = True
        self._new_versions.append({"resource_type": resource_type, "id": id, "version_id": version_id,
                                   "last_updated": when, "method": method, "content": content})
        patients = self._index(resource_type, id, resource)
        return StoredResource(resource_type, id, version_id, when, content, method, patients=patients)

    def create(self, resource: dict, *, if_none_exist: SearchQuery | None = None,
               id: str | None = None) -> tuple[StoredResource, bool]:
        """create (http.html#create), conditional with If-None-Exist (http.html#ccreate).

        The server assigns the id (any id in the body is ignored, as the spec allows) unless `id` is
        given, as a transaction does for entries it has already numbered. Returns (stored, created).
        """
        validate_resource(resource)
        self.access.require(resource["resourceType"], "c")
        if resource["resourceType"] == AUDIT:
            return self._record_audit_event(resource, if_none_exist), True
        check_write(self, resource, self.validation)
        for rule in self.rules.get(resource["resourceType"], ()):
            rule(resource["resourceType"], None, resource)
        if if_none_exist is not None:
            matches = self.match_ids(if_none_exist)
            if len(matches) > 1:
                raise precondition_failed("If-None-Exist matched more than one resource")
            if matches:
                return self.read(resource["resourceType"], matches[0]), False
        stored = self._write(resource, resource["resourceType"], id or new_id(), None, "POST")
        self._check_written(stored, "c")
        return stored, True

    def update(self, resource_type: str, id: str, resource: dict, *, if_match: str | None = None,
               method: str = "PUT") -> tuple[StoredResource, bool]:
        """update (http.html#update), creating when the id is new; If-Match for versioned update."""
        _append_only(resource_type)
        validate_resource(resource, resource_type)
        if not ID_PATTERN.match(id):
            raise bad_request(f"invalid id {id!r}")
        if resource.get("id") != id:
            raise bad_request(
                f"the body's id {resource.get('id')!r} does not match the URL's id {id!r}", f"{resource_type}.id"
            )
        self.access.require(resource_type, "u")
        check_write(self, resource, self.validation)
        previous = self._current(resource_type, id, for_update=True)
        if previous is not None and not previous.deleted and not self._visible(previous, "u"):
            raise not_found(f"{resource_type}/{id} is not known")
        self._check_if_match(previous, if_match, resource_type, id)
        created = previous is None or previous.deleted
        for rule in self.rules.get(resource_type, ()):
            rule(resource_type, None if created else previous.resource(), resource)
        stored = self._write(resource, resource_type, id, previous, method)
        self._check_written(stored, "u")
        return stored, created

    def validate(self, resource: dict, profiles: tuple[str, ...] = ()) -> list[Issue]:
        """$validate's check (resource-operation-validate.html) against the base definition, the claimed
        profiles and `profiles`, with every issue whatever its severity."""
        return validate_profiles(self, resource, profiles)

    def _check_written(self, stored: StoredResource, interaction: str) -> None:
        """403 when the grant could not reach the resource as written: a `patient/` grant may not write a
        record into another patient's compartment, nor one its scope's criteria exclude. The caller's
        transaction (or the batch entry's savepoint) then rolls the write back."""
        if not self._visible(stored, interaction):
            raise FhirError(403, [Issue("forbidden", f"the access token does not allow this "
                                                     f"{stored.resource_type} to be written as it is")])

    def conditional_update(self, query: SearchQuery, resource: dict, *, new_id: str | None = None,
                           if_match: str | None = None) -> tuple[StoredResource, bool]:
        """Conditional update (http.html#cond-update): no match creates, one match updates, more is 412."""
        resource_type = query.resource_type or ""
        _append_only(resource_type)
        matches = self.match_ids(query)
        if len(matches) > 1:
            raise precondition_failed("the conditional update matched more than one resource")
        if matches:
            if resource.get("id") not in (None, matches[0]):
                raise bad_request("the body's id does not match the resource the criteria select",
                                  f"{resource_type}.id")
            return self.update(resource_type, matches[0], {**resource, "id": matches[0]}, if_match=if_match)
        target = resource.get("id") or new_id
        if target is None:
            return self.create(resource)
        return self.update(resource_type, target, {**resource, "id": target}, if_match=if_match)

    def patch(self, resource_type: str, id: str, operations: object, *,
              if_match: str | None = None) -> StoredResource:
        """patch with JSON Patch (http.html#patch, RFC 6902).

        The version patched is the version replaced: it is read under the write lock and passed on as an
        If-Match, so a concurrent change can never be overwritten with a patch of older content.
        """
        _append_only(resource_type)
        current = self._existing(resource_type, id, for_update=True, interaction="u")
        self._check_if_match(current, if_match, resource_type, id)
        try:
            patch = jsonpatch.JsonPatch(operations)  # type: ignore[arg-type]
            patched = patch.apply(current.resource())
        except jsonpatch.JsonPatchTestFailed as exc:
            raise unprocessable(f"JSON Patch test failed: {exc}") from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError,
                AttributeError, KeyError) as exc:
            raise bad_request(f"invalid JSON Patch document: {exc}") from None
        if not isinstance(patched, dict) or patched.get("resourceType") != resource_type or patched.get("id") != id:
            raise unprocessable("a patch must not change the resourceType or id")
        stored, _ = self.update(resource_type, id, patched, if_match=current.etag, method="PATCH")
        return stored

    def delete(self, resource_type: str, id: str) -> StoredResource | None:
        """delete (http.html#delete): a new version marks the deletion; history keeps the old ones.

        Returns the deletion version, or None when the resource was already deleted; 404 if unknown.
        """
        _append_only(resource_type)
        self.access.require(resource_type, "d")
        previous = self._current(resource_type, id, for_update=True)
        if previous is None or (not previous.deleted and not self._visible(previous, "d")):
            raise not_found(f"{resource_type}/{id} is not known")
        if previous.deleted:
            return None
        when = _now()
        version_id = previous.version_id + 1
        result = self.conn.execute(
            update(R)
            .where(R.c.resource_type == resource_type, R.c.id == id, R.c.version_id == previous.version_id)
            .values(version_id=version_id, last_updated=when, deleted=True, content=None)
        )
        if result.rowcount != 1:
            raise conflict(f"{resource_type}/{id} was changed concurrently; retry the request")
        patients = tuple(self.conn.execute(select(CM.c.compartment_id).where(
            CM.c.resource_type == resource_type, CM.c.id == id, CM.c.compartment_type == "Patient")).scalars())
        self._unindex(resource_type, id)
        self._pending = True
        self._new_versions.append({"resource_type": resource_type, "id": id, "version_id": version_id,
                                   "last_updated": when, "method": "DELETE", "content": None})
        return StoredResource(resource_type, id, version_id, when, None, "DELETE", patients=patients)

    def conditional_delete(self, query: SearchQuery) -> StoredResource | None:
        """Conditional delete, single-match mode (http.html#cdelete): 412 when several match."""
        _append_only(query.resource_type or "")
        matches = self.match_ids(query)
        if len(matches) > 1:
            raise precondition_failed("the conditional delete matched more than one resource")
        if not matches:
            return None
        return self.delete(query.resource_type or "", matches[0])

    @staticmethod
    def _check_if_match(previous: StoredResource | None, if_match: str | None, resource_type: str,
                        id: str) -> None:
        if if_match is None:
            return
        expected = parse_etag(if_match)
        if previous is None or previous.deleted or previous.version_id != expected:
            have = "no current version" if previous is None or previous.deleted else f"version {previous.version_id}"
            raise precondition_failed(f"If-Match asked for version {expected} of {resource_type}/{id}, "
                                      f"which has {have}")

    # -- history and search -------------------------------------------------------------------------
    def history(self, resource_type: str | None = None, id: str | None = None, *, since: datetime | None = None,
                at: datetime | None = None, count: int = 50, before_seq: int | None = None
                ) -> list[StoredResource]:
        """history (http.html#history): newest first, paged by the version sequence.

        A restricted grant needs read on the resource for its history, and search on the type for a type's
        or the system's; it gets the versions of the resources it may now reach that way. Audit events have
        no history (each is written once): search them instead.
        """
        if resource_type == AUDIT:
            raise FhirError(405, [Issue("not-supported", "AuditEvent has no history: each event is written "
                                                         "once; search AuditEvent by date instead")])
        self.flush()
        stmt = select(V.c.seq, V.c.resource_type, V.c.id, V.c.version_id, V.c.last_updated, V.c.method,
                      V.c.content)
        if not self.access.unrestricted:
            stmt = self._history_visible(stmt, resource_type, id)
        if resource_type is not None:
            stmt = stmt.where(V.c.resource_type == resource_type)
        if id is not None:
            stmt = stmt.where(V.c.id == id)
        if since is not None:
            stmt = stmt.where(V.c.last_updated >= since)
        if at is not None:
            later = V.alias("later")
            stmt = stmt.where(V.c.last_updated <= at).where(~select(later.c.seq).where(
                and_(later.c.resource_type == V.c.resource_type, later.c.id == V.c.id,
                     later.c.version_id > V.c.version_id, later.c.last_updated <= at)).exists())
        if before_seq is not None:
            stmt = stmt.where(V.c.seq < before_seq)
        stmt = stmt.order_by(V.c.seq.desc()).limit(count)
        return [
            StoredResource(r.resource_type, r.id, r.version_id, r.last_updated, r.content, r.method, r.seq)
            for r in self.conn.execute(stmt)
        ]

    def _history_visible(self, stmt, resource_type: str | None, id: str | None):
        if id is not None and resource_type is not None:
            self._existing(resource_type, id, interaction="r")
            return stmt
        if resource_type is not None:
            self.access.require(resource_type, "s")
        current = R.alias("current")
        return stmt.join(current, and_(current.c.resource_type == V.c.resource_type, current.c.id == V.c.id)) \
            .where(visible(self.access, current, "s", _now(), sql.condition))

    def search(self, query: SearchQuery, *, count: int, cursor: str | None = None) -> SearchPage:
        """search (search.html): one page of matches in the query's order, keyset-paged, with includes.

        The total is counted on the first page (in the page's own statement) and, with `_total=accurate`,
        on later pages too (in a second one); `count=0` (`_summary=count`) only counts.
        """
        self.flush()
        if query.resource_type == AUDIT:
            return self._audit_page(query, count, cursor)
        self._require_search(query)
        query = self._expand_value_sets(query)
        now = _now()
        if count == 0:
            return SearchPage([], None if query.total == "none" else self._count(query, now))
        after, backwards = cursor_codec.decode(cursor, query.sort) if cursor else (None, False)
        want_total = query.total == "accurate" or (query.total is None and cursor is None)
        rows = None
        if after is None:  # a first page: its statement may be cached by shape (store/shapes.py)
            rows = SHAPES.execute(self.conn, query, count + 1, want_total, self.access,
                                  lambda shape: sql.select_page(shape, now, count + 1, None, False, want_total,
                                                                self.access))
        if rows is None:
            rows = self.conn.execute(sql.select_page(query, now, count + 1, after, backwards,
                                                     want_total and after is None, self.access)).all()
        more = len(rows) > count
        rows = rows[:count]
        if backwards:
            rows.reverse()
        total = None
        if want_total:
            total = (rows[0].total if rows else 0) if after is None else self._count(query, now)
        elif query.total == "estimate":
            total = self._estimate(query, now)
        page = [StoredResource(r.resource_type, r.id, r.version_id, r.last_updated, r.content) for r in rows]
        has_next = more if not backwards else after is not None
        has_prev = after is not None if not backwards else more
        return SearchPage(
            page, total,
            next_cursor=_edge(rows[-1], len(query.sort), False) if rows and has_next else None,
            prev_cursor=_edge(rows[0], len(query.sort), True) if rows and has_prev else None,
            included=self._included(page, query) if query.includes or query.everything else [],
        )

    # -- the audit log (store/audit.py) ---------------------------------------------------------------
    def _audit_event(self, id: str) -> StoredResource:
        audit.require(self.access, "r")
        row = audit.read(self.conn, id)
        if row is None:
            raise not_found(f"AuditEvent/{id} is not known")
        return StoredResource(AUDIT, row.id, 1, row.recorded, row.content, "POST")

    def _audit_page(self, query: SearchQuery, count: int, cursor: str | None) -> SearchPage:
        audit.require(self.access, "s")
        rows, following, total = audit.search(self.conn, query, count, cursor)
        return SearchPage([StoredResource(AUDIT, r.id, 1, r.recorded, r.content, "POST") for r in rows], total,
                          next_cursor=following)

    def _record_audit_event(self, resource: dict, if_none_exist: SearchQuery | None) -> StoredResource:
        """create on AuditEvent: an event a client records (BALP's Audit Record Repository) joins the
        server's own in the chain, written now, inside the request's transaction."""
        if if_none_exist is not None:
            raise bad_request("AuditEvent is not created conditionally: each event is recorded once")
        audit.require(self.access, "c")
        when = _now()
        event = {**resource, "id": new_id(),
                 "meta": {**(resource.get("meta") or {}), "versionId": "1", "lastUpdated": format_instant(when)}}
        try:
            audit.append(self.conn, [event])
        except ValueError as exc:  # `recorded` is not an instant the log can order by
            raise bad_request(f"AuditEvent.recorded: {exc}", "AuditEvent.recorded") from None
        return StoredResource(AUDIT, event["id"], 1, when, jsonio.dumps(event), "POST")

    def _count(self, query: SearchQuery, now: datetime) -> int:
        return self.conn.execute(sql.select_count(query, now, self.access)).scalar_one()

    def _estimate(self, query: SearchQuery, now: datetime) -> int:
        """`_total=estimate`: PostgreSQL's planner estimate of the matches (exact on SQLite)."""
        if self.conn.dialect.name != "postgresql":
            return self._count(query, now)
        compiled = sql.select_ids(query, now, None, self.access).compile(
            dialect=self.conn.dialect, compile_kwargs={"render_postcompile": True})
        plan = self.conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(compiled), compiled.params).scalar_one()
        plan = jsonio.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])

    def _expand_value_sets(self, query: SearchQuery) -> SearchQuery:
        """Token criteria that need the terminology service, as plain codes: `:in`/`:not-in` a ValueSet
        (search.html#token), and `:below`/`:above` a code in its CodeSystem's hierarchy."""
        if not any(needs_terminology(c) for c in query.criteria):
            return query
        terminology = StoredTerminology(self)
        criteria = [with_codes(terminology, c) for c in query.criteria]
        return replace(query, criteria=tuple(c for c in criteria if c is not None))

    def _included(self, page: list[StoredResource], query: SearchQuery) -> list[StoredResource]:
        """`_include` / `_revinclude`, repeated on what they add for `:iterate` (search.html#revinclude).

        For `$everything`, every reference of the page to a type outside the compartment's: those of
        compartment types come in as members, and another patient's records never by reference.
        """
        seen = {(r.resource_type, r.id) for r in page}
        found: list[StoredResource] = []
        frontier = page
        includes, members = query.includes, frozenset()
        if query.everything and query.compartment is not None:
            includes = (Include("*", "*"),)
            members = frozenset((query.compartment[0], *compartment_types(query.compartment[0])))
        for depth in range(MAX_INCLUDE_DEPTH):
            wanted = [i for i in includes if depth == 0 or i.iterate]
            keys = [(r.resource_type, r.id) for r in frontier]
            added: list[StoredResource] = []
            for inc in wanted:
                options = {"postgresql": self._postgresql, "access": self.access}
                stmt = include_sql.select_revincluded(inc, keys, MAX_INCLUDED, **options) if inc.reverse \
                    else include_sql.select_included(inc, keys, MAX_INCLUDED, members, **options)
                for row in self.conn.execute(stmt):
                    if (row.resource_type, row.id) not in seen and len(found) + len(added) < MAX_INCLUDED:
                        seen.add((row.resource_type, row.id))
                        added.append(StoredResource(row.resource_type, row.id, row.version_id, row.last_updated,
                                                    row.content))
            found += added
            frontier = added
            if not frontier:
                break
        return found

    def match_ids(self, query: SearchQuery, limit: int = 2) -> list[str]:
        """Ids of up to `limit` current matches, for conditional interactions and references."""
        if query.resource_type is None:
            raise bad_request("conditional criteria need a resource type")
        if not query.criteria:
            raise bad_request("a conditional interaction needs search criteria")
        self.flush()
        self._require_search(query)
        query = self._expand_value_sets(query)
        return [row.id for row in self.conn.execute(sql.select_ids(query, _now(), limit, self.access))]

    def _require_search(self, query: SearchQuery) -> None:
        """403 for a search on a type the grant may not search; a search of every type is narrowed instead."""
        if query.resource_type is not None:
            self.access.require(query.resource_type, "s")
        for resource_type in query.types:
            self.access.require(resource_type, "s")


def _append_only(resource_type: str) -> None:
    if resource_type == AUDIT:
        raise FhirError(405, [Issue("not-supported", "the audit log is append-only: AuditEvents are neither "
                                                     "updated nor deleted")])


def _edge(row, keys: int, backwards: bool) -> str:
    """The cursor of a page's first (`backwards`) or last row: its sort key values, type and id."""
    values = row._mapping
    return cursor_codec.encode([values[f"k{i}"] for i in range(keys)], row.resource_type, row.id, backwards)


@contextmanager
def open_repository(engine: Engine, *, write: bool, base_url: str = "", access: Access = ALL,
                    validation: str = "off", rules: WriteRules | None = None) -> Iterator[SqlRepository]:
    """A repository over one database transaction, for the grant `access`: committed at the end, rolled
    back on error. `validation` is FHIR_VALIDATION's mode for writes (store/validation.py); `rules` are
    the features' rules on writes (a referral Task's state machine, say)."""
    with unit_of_work(engine, write=write) as conn:
        repo = SqlRepository(conn, base_url, access, validation, rules)
        yield repo
        repo.flush()
