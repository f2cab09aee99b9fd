"""`_include` and `_revinclude` as SQL (search.html#include): the resources a page refers to, or that refer
to it, through the reference index, one statement per include. Duplicates are left to the caller, which
drops what it has already (DISTINCT over the bodies would cost more than the rows).

On PostgreSQL the page's (type, id) keys go in as two array parameters, unnested: the statement's text is
then the same for every page, so psycopg parses and prepares it once, where an `IN` list of 50 pairs made
a new text of 100 placeholders that psycopg parsed again on every request (a sixth of a worker's time in
`$everything`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Select, String, all_, and_, bindparam, false, func, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY

from fhir_server.search.parse import Include
from fhir_server.store.access import ALL, Access, visible
from fhir_server.store.query import condition
from fhir_server.store.tables import INDEX_TABLES
from fhir_server.store.tables import resource_table as R

REF = INDEX_TABLES["reference"]
_COLUMNS = (R.c.resource_type, R.c.id, R.c.version_id, R.c.last_updated, R.c.content)


def key_rows(keys: list[tuple[str, str]], postgresql: bool):
    """(type, id) pairs for `IN`: an unnest of two arrays on PostgreSQL, the list itself elsewhere."""
    if not postgresql:
        return keys
    rows = func.unnest(bindparam("key_types", [t for t, _ in keys], type_=ARRAY(String)),
                       bindparam("key_ids", [i for _, i in keys], type_=ARRAY(String))
                       ).table_valued("resource_type", "id").render_derived(name="page_keys")
    return select(rows.c.resource_type, rows.c.id)


def select_included(include: Include, sources: list[tuple[str, str]], limit: int,
                    skip_types: frozenset[str] = frozenset(), *, postgresql: bool = False,
                    access: Access = ALL, now: datetime | None = None) -> Select:
    """Targets of the references that the `sources` (type, id) make by `include.param`, as far as the grant
    `access` lets its search see them."""
    stmt = (select(*_COLUMNS)
            .join(REF, and_(REF.c.target_type == R.c.resource_type, REF.c.target_id == R.c.id))
            .where(tuple_(REF.c.resource_type, REF.c.id).in_(key_rows(sources, postgresql)),
                   R.c.deleted == false()))
    if include.source_type != "*":
        stmt = stmt.where(REF.c.resource_type == include.source_type)
    if include.param != "*":
        stmt = stmt.where(REF.c.param == include.param)
    if include.target_type is not None:
        stmt = stmt.where(REF.c.target_type == include.target_type)
    if skip_types and postgresql:  # one array parameter, not 60-odd placeholders (see above)
        stmt = stmt.where(REF.c.target_type != all_(bindparam("skip_types", sorted(skip_types),
                                                              type_=ARRAY(String))))
    elif skip_types:
        stmt = stmt.where(REF.c.target_type.not_in(skip_types))
    return _visible(stmt, access, now).limit(limit)


def select_revincluded(include: Include, targets: list[tuple[str, str]], limit: int, *,
                       postgresql: bool = False, access: Access = ALL, now: datetime | None = None) -> Select:
    """Resources of `include.source_type` whose `include.param` refers to one of the `targets`, as far as
    the grant `access` lets its search see them."""
    stmt = (select(*_COLUMNS)
            .join(REF, and_(REF.c.resource_type == R.c.resource_type, REF.c.id == R.c.id))
            .where(tuple_(REF.c.target_type, REF.c.target_id).in_(key_rows(targets, postgresql)),
                   R.c.deleted == false()))
    if include.source_type != "*":
        stmt = stmt.where(REF.c.resource_type == include.source_type)
    if include.param != "*":
        stmt = stmt.where(REF.c.param == include.param)
    return _visible(stmt, access, now).limit(limit)


def _visible(stmt: Select, access: Access, now: datetime | None) -> Select:
    if access.unrestricted:
        return stmt
    return stmt.where(visible(access, R, "s", now or datetime.now(UTC).replace(tzinfo=None), condition))
