"""SearchQuery -> SQL over the resource and index tables: the one place where search meets SQL."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, or_, select

from fhir_server.search.index import index_value
from fhir_server.search.parse import Criterion, DateValue, SearchQuery, TokenValue
from fhir_server.store.tables import resource_table as R
from fhir_server.store.tables import token_table as T


def _date_clause(column, value: DateValue) -> ColumnElement[bool]:
    """A point in time (lastUpdated) against a prefixed range (search.html#prefix)."""
    start, end = value.range.start, value.range.end
    return {
        "eq": and_(column >= start, column < end),
        "ne": or_(column < start, column >= end),
        "gt": column >= end,
        "sa": column >= end,
        "ge": column >= start,
        "lt": column < start,
        "eb": column < start,
        "le": column < end,
    }[value.prefix]


def _token_clause(resource_type: str, param: str, value: TokenValue) -> ColumnElement[bool]:
    conditions = [T.c.resource_type == resource_type, T.c.id == R.c.id, T.c.param == param]
    if value.code is not None:
        conditions.append(T.c.code == index_value(value.code))
    if value.system_given:
        conditions.append(T.c.system.is_(None) if value.system is None else T.c.system == index_value(value.system))
    return exists().where(*conditions)


def _criterion_clause(resource_type: str | None, criterion: Criterion) -> ColumnElement[bool]:
    if criterion.name == "_id":
        return R.c.id.in_(criterion.values) if criterion.values else false()
    if criterion.name == "_lastUpdated":
        return and_(*(_date_clause(R.c.last_updated, v) for v in criterion.values))
    if criterion.name == "identifier" and resource_type is not None:
        return or_(*(_token_clause(resource_type, "identifier", v) for v in criterion.values))
    raise ValueError(f"no SQL for search parameter {criterion.name}")  # parse.py lets none through


def where_clause(query: SearchQuery) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [R.c.deleted == false()]
    if query.resource_type is not None:
        clauses.append(R.c.resource_type == query.resource_type)
    clauses.extend(_criterion_clause(query.resource_type, c) for c in query.criteria)
    return clauses


def select_page(query: SearchQuery, limit: int, after: tuple[str, str] | None) -> Select:
    """Matches ordered by (type, id), starting after the keyset cursor `after`, `limit` rows.

    Each row carries the total number of matches, so page and total come from one snapshot.
    """
    total = select_count(query).scalar_subquery().label("total")
    stmt = select(R.c.resource_type, R.c.id, R.c.version_id, R.c.last_updated, R.c.content, total).where(
        *where_clause(query)
    )
    if after is not None:
        after_type, after_id = after
        stmt = stmt.where(or_(R.c.resource_type > after_type,
                              and_(R.c.resource_type == after_type, R.c.id > after_id)))
    return stmt.order_by(R.c.resource_type, R.c.id).limit(limit)


def select_count(query: SearchQuery) -> Select:
    return select(func.count()).select_from(R).where(*where_clause(query))


def select_ids(query: SearchQuery, limit: int) -> Select:
    return select(R.c.id, R.c.version_id).where(*where_clause(query)).order_by(R.c.id).limit(limit)
