"""Rebuilding the search index rows (search.html#ptypes) when the SearchParameters change.

Each resource type's rows were made with a set of SearchParameters; a digest of that set is kept per type.
`fhir-server migrate` reindexes the types whose digest differs (a new profile parameter, a changed
expression, a new index format), and `fhir-server reindex` does it on demand. Each batch of resources has
its rows replaced in one transaction, so a search never sees a resource without its rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable

from sqlalchemy import Engine, delete, false, insert, select

from fhir_server.fhir import jsonio
from fhir_server.fhir.definitions import resource_types
from fhir_server.search.index import index_rows, indexed_parameters
from fhir_server.store.db import unit_of_work
from fhir_server.store.tables import INDEX_TABLES, index_state_table
from fhir_server.store.tables import resource_table as R

# Bump when index_rows() changes what it writes for the same parameters.
INDEX_FORMAT = 1
BATCH = 500


def digest(resource_type: str) -> str:
    spec = [(sp.code, sp.type, sp.expression, [(c.definition, c.expression) for c in sp.components])
            for sp in indexed_parameters(resource_type)]
    return hashlib.sha256(json.dumps([INDEX_FORMAT, spec]).encode()).hexdigest()


def stale_types(engine: Engine) -> list[str]:
    """Types whose index rows were made with other parameters than the current ones (or never recorded)."""
    with unit_of_work(engine, write=False) as conn:
        recorded = dict(conn.execute(select(index_state_table.c.resource_type, index_state_table.c.digest)).all())
    return sorted(t for t in resource_types() if recorded.get(t) != digest(t))


def _record(engine: Engine, types: Iterable[str]) -> None:
    with unit_of_work(engine, write=True) as conn:
        for resource_type in types:
            conn.execute(delete(index_state_table).where(index_state_table.c.resource_type == resource_type))
            conn.execute(insert(index_state_table), {"resource_type": resource_type, "digest": digest(resource_type)})


def reindex(engine: Engine, types: Iterable[str], base_url: str = "",
            progress: Callable[[str, int], None] | None = None) -> int:
    """Rebuild the index rows of every current resource of `types`; returns how many were reindexed."""
    done = 0
    for resource_type in types:
        after = ""
        while True:
            with unit_of_work(engine, write=True) as conn:
                rows = conn.execute(
                    select(R.c.id, R.c.content)
                    .where(R.c.resource_type == resource_type, R.c.deleted == false(), R.c.id > after)
                    .order_by(R.c.id).limit(BATCH)
                ).all()
                if not rows:
                    break
                ids = [r.id for r in rows]
                new_rows: dict[str, list[dict]] = {t: [] for t in INDEX_TABLES}
                for row in rows:
                    resource = jsonio.loads(row.content) if isinstance(row.content, str) else row.content
                    for table, table_rows in index_rows(resource, resource_type, row.id, base_url).items():
                        new_rows[table].extend(table_rows)
                for name, table in INDEX_TABLES.items():
                    conn.execute(delete(table).where(table.c.resource_type == resource_type, table.c.id.in_(ids)))
                    if new_rows[name]:
                        conn.execute(insert(table), new_rows[name])
            after = ids[-1]
            done += len(ids)
            if progress is not None:
                progress(resource_type, len(ids))
        _record(engine, [resource_type])
    return done


def reindex_stale(engine: Engine, base_url: str = "",
                  progress: Callable[[str, int], None] | None = None) -> tuple[list[str], int]:
    """Reindex every stale type; returns the types and the number of resources."""
    types = stale_types(engine)
    return types, reindex(engine, types, base_url, progress)
