"""`_include` and `_revinclude` as SQL (search.html#include): the resources a page refers to, or that refer
to it, through the reference index, one statement per include. Duplicates are left to the caller, which
drops what it has already (DISTINCT over the bodies would cost more than the rows)."""

from __future__ import annotations

from sqlalchemy import Select, and_, false, select, tuple_

from fhir_server.search.parse import Include
from fhir_server.store.tables import INDEX_TABLES
from fhir_server.store.tables import resource_table as R

REF = INDEX_TABLES["reference"]
_COLUMNS = (R.c.resource_type, R.c.id, R.c.version_id, R.c.last_updated, R.c.content)


def select_included(include: Include, sources: list[tuple[str, str]], limit: int,
                    skip_types: frozenset[str] = frozenset()) -> Select:
    """Targets of the references that the `sources` (type, id) make by `include.param`."""
    stmt = (select(*_COLUMNS)
            .join(REF, and_(REF.c.target_type == R.c.resource_type, REF.c.target_id == R.c.id))
            .where(tuple_(REF.c.resource_type, REF.c.id).in_(sources), R.c.deleted == false()))
    if include.source_type != "*":
        stmt = stmt.where(REF.c.resource_type == include.source_type)
    if include.param != "*":
        stmt = stmt.where(REF.c.param == include.param)
    if include.target_type is not None:
        stmt = stmt.where(REF.c.target_type == include.target_type)
    if skip_types:
        stmt = stmt.where(REF.c.target_type.not_in(skip_types))
    return stmt.limit(limit)


def select_revincluded(include: Include, targets: list[tuple[str, str]], limit: int) -> Select:
    """Resources of `include.source_type` whose `include.param` refers to one of the `targets`."""
    stmt = (select(*_COLUMNS)
            .join(REF, and_(REF.c.resource_type == R.c.resource_type, REF.c.id == R.c.id))
            .where(tuple_(REF.c.target_type, REF.c.target_id).in_(targets), R.c.deleted == false()))
    if include.source_type != "*":
        stmt = stmt.where(REF.c.resource_type == include.source_type)
    if include.param != "*":
        stmt = stmt.where(REF.c.param == include.param)
    return stmt.limit(limit)
