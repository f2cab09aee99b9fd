"""Search statements cached by the shape of the query, on PostgreSQL.

Building a page's statement with SQLAlchemy costs more Python time than PostgreSQL spends answering it
(about 1.5 ms against 0.6 ms for `Condition?patient=X&clinical-status=active`; docs/benchmarks.md). The
patient-scoped searches that EHRs and the worklists send differ only in their values. So a first page of
such a search is built once per shape and compiled once; later searches of the same shape fill in their
own values and send the compiled SQL as it is.

A shape is the query with its token codes and systems, its reference ids and its compartment owner put
in numbered slots: sentinel strings, built like any value. After compiling, every bound value that
equals a sentinel becomes that slot. A query is only cached when its compiled SQL holds each sentinel as
one whole bound value and nowhere else. Anything else, or any other kind of criterion, is built as
before. A date criterion, for example, may depend on the time of the request.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from threading import Lock

from sqlalchemy.engine import Connection

from fhir_server.search import values as v
from fhir_server.search.parse import Criterion, SearchQuery
from fhir_server.search.strings import index_value
from fhir_server.store.access import Access

_CACHEABLE_TYPES = frozenset({"token", "reference"})


@dataclass(frozen=True)
class Compiled:
    sql: str
    params: dict  # every bound value, as first compiled
    slots: tuple[tuple[str, int], ...]  # (bound parameter name, slot number)


class ShapeCache:
    """Compiled first-page statements by (shape, page size, total wanted, grant), least recently used out."""

    SIZE = 2000

    def __init__(self) -> None:
        self._compiled: OrderedDict[tuple, Compiled | None] = OrderedDict()
        self._lock = Lock()

    def execute(self, conn: Connection, query: SearchQuery, limit: int, with_total: bool, access: Access,
                build) -> list | None:
        """The page's rows by a cached statement; None when this query cannot take one (the caller builds
        it as usual). `build(query)` builds the statement of a (template) query."""
        if conn.dialect.name != "postgresql" or (access.rules and any(r.criteria for r in access.rules)):
            return None  # (scope criteria may hold dates, which depend on the request's time)
        template = _template(query)
        if template is None:
            return None
        shape, values = template
        key = (shape, limit, with_total, access)
        with self._lock:
            known = key in self._compiled
            compiled = self._compiled.get(key)
            if known:
                self._compiled.move_to_end(key)
        if not known:
            compiled = _compile(conn, build(shape), len(values))
            with self._lock:
                self._compiled[key] = compiled
                while len(self._compiled) > self.SIZE:
                    self._compiled.popitem(last=False)
        if compiled is None:
            return None
        params = dict(compiled.params)
        for name, slot in compiled.slots:
            params[name] = values[slot]
        return conn.exec_driver_sql(compiled.sql, params).all()


SHAPES = ShapeCache()  # one per process: repositories live for one request


def _sentinel(slot: int) -> str:
    return f"\x1fcareweave-slot-{slot}\x1f"


def _template(query: SearchQuery) -> tuple[SearchQuery, list[str]] | None:
    """The query with its values in slots, and the values; None for a query of another kind."""
    if query.care_period is not None:  # ($everything's start and end)
        return None
    values: list[str] = []

    def slot(value: str) -> str:
        values.append(index_value(value))
        return _sentinel(len(values) - 1)

    criteria = []
    for criterion in query.criteria:
        if not isinstance(criterion, Criterion) or criterion.type not in _CACHEABLE_TYPES \
                or criterion.modifier is not None or criterion.name.startswith("_") or not criterion.values:
            return None
        parts = []
        for value in criterion.values:
            if isinstance(value, v.TokenValue) and value.code is not None:
                parts.append(replace(value, code=slot(value.code),
                                     system=slot(value.system) if value.system is not None else None))
            elif isinstance(value, v.ReferenceValue) and value.url is None and value.id is not None:
                parts.append(replace(value, id=slot(value.id)))
            else:
                return None
        criteria.append(replace(criterion, values=tuple(parts)))
    compartment = query.compartment
    if compartment is not None:
        compartment = (compartment[0], slot(compartment[1]))
    return replace(query, criteria=tuple(criteria), compartment=compartment), values


def _compile(conn: Connection, statement, slots: int) -> Compiled | None:
    compiled = statement.compile(dialect=conn.dialect)
    sql = compiled.string
    if "POSTCOMPILE" in sql:  # an expanding IN list: its SQL depends on the values
        return None
    params = compiled.construct_params()
    found = []
    for name, value in params.items():
        if isinstance(value, str) and "\x1f" in value:
            slot = next((i for i in range(slots) if value == _sentinel(i)), None)
            if slot is None:
                return None  # a sentinel inside a longer value (a LIKE pattern): not a plain slot
            found.append((name, slot))
    if {slot for _, slot in found} != set(range(slots)) or "\x1f" in sql:
        return None
    return Compiled(sql, params, tuple(found))
