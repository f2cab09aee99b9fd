"""`_include` and `_revinclude` as SQL (search.html#include): the resources a page refers to, or that refer
to it, through the reference index, in one statement per include and source type."""

from __future__ import annotations

from sqlalchemy import Select, false, select

from fhir_server.search.parse import Include
from fhir_server.store.tables import INDEX_TABLES
from fhir_server.store.tables import resource_table as R

REF = INDEX_TABLES["reference"]
_COLUMNS = (R.c.resource_type, R.c.id, R.c.version_id, R.c.last_updated, R.c.content)


def select_included(include: Include, source_type: str, ids: list[str], limit: int) -> Select:
    """Targets of the references that resources `source_type`/`ids` make by `include.param`."""
    stmt = (select(*_COLUMNS).distinct()
            .join(REF, (REF.c.target_type == R.c.resource_type) & (REF.c.target_id == R.c.id))
            .where(REF.c.resource_type == source_type, REF.c.id.in_(ids), R.c.deleted == false()))
    if include.param != "*":
        stmt = stmt.where(REF.c.param == include.param)
    if include.target_type is not None:
        stmt = stmt.where(REF.c.target_type == include.target_type)
    return stmt.limit(limit)


def select_revincluded(include: Include, target_type: str, ids: list[str], limit: int) -> Select:
    """Resources of `include.source_type` whose `include.param` refers to `target_type`/`ids`."""
    stmt = (select(*_COLUMNS).distinct()
            .join(REF, (REF.c.resource_type == R.c.resource_type) & (REF.c.id == R.c.id))
            .where(REF.c.target_type == target_type, REF.c.target_id.in_(ids), R.c.deleted == false()))
    if include.source_type != "*":
        stmt = stmt.where(REF.c.resource_type == include.source_type)
    if include.param != "*":
        stmt = stmt.where(REF.c.param == include.param)
    return stmt.limit(limit)
