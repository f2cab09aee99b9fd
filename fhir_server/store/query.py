"""SearchQuery -> SQL over the resource and index tables: the one place where search meets SQL.

Each criterion becomes a condition on a resource-table alias: `id IN (ids of matching index rows)` for a
type search, a correlated EXISTS for a system search. One small function per parameter type builds the
row condition for one value (search.html#ptypes), behind the `_ROW_CONDITIONS` dispatch table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.sql import FromClause

from fhir_server.search import values as v
from fhir_server.search.index import composite_parts
from fhir_server.search.parse import Chain, Criterion, Has, SearchQuery, SortKey
from fhir_server.search.strings import index_value, normalize
from fhir_server.store.access import ALL, Access, visible
from fhir_server.store.tables import INDEX_TABLES
from fhir_server.store.tables import resource_table as R

S, T, D = INDEX_TABLES["string"], INDEX_TABLES["token"], INDEX_TABLES["date"]
REF, N, Q = INDEX_TABLES["reference"], INDEX_TABLES["number"], INDEX_TABLES["quantity"]
U, C, CM = INDEX_TABLES["uri"], INDEX_TABLES["composite"], INDEX_TABLES["compartment"]
_TABLE_OF_TYPE = {"string": S, "token": T, "date": D, "reference": REF, "number": N, "quantity": Q, "uri": U,
                  "composite": C}


# -- one value, one row condition, by parameter type ------------------------------------------------------
def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def string_condition(col_value, col_exact, value: v.StringValue, modifier: str | None) -> ColumnElement[bool]:
    norm = normalize(value.text)
    if modifier == "exact":
        return and_(col_value == norm, col_exact == index_value(value.text))
    if modifier == "contains":
        return col_value.like(f"%{_like_prefix(norm)}%", escape="\\")
    return col_value.like(f"{_like_prefix(norm)}%", escape="\\")


def token_condition(col_system, col_code, value: v.TokenValue) -> ColumnElement[bool]:
    conditions = []
    if value.code is not None:
        conditions.append(col_code == index_value(value.code))
    if value.system_given:
        conditions.append(col_system.is_(None) if value.system is None else col_system == index_value(value.system))
    return and_(*conditions) if conditions else true()


def tokens_condition(col_system, col_code, values: list[v.TokenValue]) -> ColumnElement[bool]:
    """Any of `values`: those naming both system and code as one `code IN (...)` per system, so that a long
    list (a ValueSet's codes) stays a shallow expression, which SQLite's parser needs (depth at most 1000)."""
    by_system: dict[str | None, list[str]] = {}
    rest = []
    for value in values:
        if value.code is not None and value.system_given:
            by_system.setdefault(value.system, []).append(index_value(value.code))
        else:
            rest.append(token_condition(col_system, col_code, value))
    grouped = [and_(col_system.is_(None) if system is None else col_system == index_value(system),
                    col_code.in_(codes) if len(codes) > 1 else col_code == codes[0])
               for system, codes in by_system.items()]
    return or_(*grouped, *rest)


def range_condition(start, end, prefix: str, s_start, s_end, *, approx: tuple | None = None) -> ColumnElement[bool]:
    """A stored range [start, end) against a search range [s_start, s_end) (search.html#prefix).

    """
    within = and_(start >= s_start, end <= s_end)
    if prefix == "eq":
        return within
    if prefix == "ne":
        return not_(within)
    if prefix == "gt":
        return end > s_end
    if prefix == "lt":
        return start < s_start
    if prefix == "ge":
        return or_(end > s_end, within)
    if prefix == "le":
        return or_(start < s_start, within)
    if prefix == "sa":
        return start >= s_end
    if prefix == "eb":
        return end <= s_start
    low, high = approx  # ap
    return and_(start < high, end > low)


def date_condition(col_start, col_end, value: v.DateValue, now: datetime) -> ColumnElement[bool]:
    return range_condition(col_start, col_end, value.prefix, value.range.start, value.range.end,
                           approx=_approx(value, now))


def number_condition(col_low, col_high, value: v.NumberValue) -> ColumnElement[bool]:
    """Stored [low, high] (a point has low == high) against a prefixed number (search.html#number)."""
    p, x = value.prefix, value.value
    if p == "eq":
        return and_(col_low >= value.low, col_high < value.high)
    if p == "ne":
        return not_(and_(col_low >= value.low, col_high < value.high))
    if p in ("gt", "sa"):
        return col_low > x if p == "sa" else col_high > x
    if p in ("lt", "eb"):
        return col_high < x if p == "eb" else col_low < x
    if p == "ge":
        return col_high >= x
    if p == "le":
        return col_low <= x
    margin = abs(x) / 10  # ap: within 10%
    return and_(col_low <= x + margin, col_high >= x - margin)


def quantity_condition(table, value: v.QuantityValue, *, system="system", code="code", unit="unit",
                       low="low", high="high") -> ColumnElement[bool]:
    conditions = [number_condition(table.c[low], table.c[high], value.number)]
    if value.system is not None:
        conditions.append(table.c[system] == index_value(value.system))
    if value.code is not None:
        units = index_value(value.code)
        conditions.append(table.c[code] == units if value.system is not None or unit is None
                          else or_(table.c[code] == units, table.c[unit] == units))
    return and_(*conditions)


def reference_condition(value: v.ReferenceValue) -> ColumnElement[bool]:
    if value.url is not None:
        condition = REF.c.url == index_value(value.url)
        return and_(condition, REF.c.version == value.version) if value.version else condition
    condition = REF.c.target_id == index_value(value.id)
    return and_(REF.c.target_type == value.target_type, condition) if value.target_type else condition


def uri_condition(col, value: v.UriValue, modifier: str | None) -> ColumnElement[bool]:
    uri = index_value(value.uri)
    if modifier == "below":
        return or_(col == uri, col.like(_like_prefix(uri.rstrip("/")) + "/%", escape="\\"))
    if modifier == "above":
        return or_(col == uri, literal(uri).like(col.concat("/%")))
    return col == uri


def composite_condition(criterion: Criterion, value: v.CompositeValue, now: datetime) -> ColumnElement[bool]:
    _, second = composite_parts(criterion.param)
    first = token_condition(C.c.a_system, C.c.a_code, value.first)
    part = value.second
    if second.type == "token":
        other = token_condition(C.c.b_system, C.c.b_code, part)
    elif second.type == "quantity":
        other = quantity_condition(C, part, system="b_system", code="b_code", unit="b_unit", low="b_low",
                                   high="b_high")
    elif second.type == "number":
        other = number_condition(C.c.b_low, C.c.b_high, part)
    elif second.type == "date":
        other = date_condition(C.c.b_start, C.c.b_end, part, now)
    elif second.type == "reference":
        other = C.c.b_code == (f"{part.target_type}/{part.id}" if part.target_type else part.url)
    else:
        other = string_condition(C.c.b_text, C.c.b_text, part, None)
    return and_(first, other)


# -- criteria -> conditions on a resource alias -----------------------------------------------------------
# A search's scope: one type (type search), several (system search with `_type`), or None (every type).
Scope = str | tuple[str, ...] | None


def _rows_match(outer: FromClause, scope: Scope, table: Table, param: str,
                condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """`outer` has a row of `table` for `param` satisfying `condition`, as a semi-join the planner can drive
    from the index table."""
    if isinstance(scope, str):
        return outer.c.id.in_(select(table.c.id).where(table.c.resource_type == scope, table.c.param == param,
                                                       condition))
    rows = select(table.c.resource_type, table.c.id).where(table.c.param == param, condition)
    if scope:
        rows = rows.where(table.c.resource_type.in_(scope))
    return tuple_(outer.c.resource_type, outer.c.id).in_(rows)


def _negated(criterion: Criterion) -> bool:
    """Whether a criterion matches the resources that lack matching index rows (`:not`, `:missing=true`)."""
    if criterion.modifier == "missing":
        return bool(criterion.values[0])
    return criterion.type == "token" and criterion.modifier in ("not", "not-in")


def _index_rows(criterion: Criterion, now: datetime) -> tuple[Table, str, ColumnElement[bool], bool]:
    """(table, param, row condition, negated) of a criterion answered from an index table."""
    name, modifier, values = criterion.name, criterion.modifier, criterion.values
    table = _TABLE_OF_TYPE[criterion.type]
    if modifier == "missing":
        return table, name, true(), _negated(criterion)
    if criterion.type == "token":
        if modifier == "text":
            return S, f"{name}:text", or_(*(string_condition(S.c.value, S.c.exact, x, None) for x in values)), False
        param = f"{name}:of-type" if modifier == "of-type" else name
        return T, param, tokens_condition(T.c.system, T.c.code, list(values)), _negated(criterion)
    if criterion.type == "reference" and modifier == "identifier":
        return T, f"{name}:identifier", tokens_condition(T.c.system, T.c.code, list(values)), False
    return table, name, or_(*(_ROW_CONDITIONS[criterion.type](criterion, x, now) for x in values)), False


_ROW_CONDITIONS: dict[str, Callable[[Criterion, object, datetime], ColumnElement[bool]]] = {
    "string": lambda c, x, now: string_condition(S.c.value, S.c.exact, x, c.modifier),
    "date": lambda c, x, now: date_condition(D.c.low, D.c.high, x, now),
    "number": lambda c, x, now: number_condition(N.c.low, N.c.high, x),
    "quantity": lambda c, x, now: quantity_condition(Q, x),
    "reference": lambda c, x, now: reference_condition(x),
    "uri": lambda c, x, now: uri_condition(U.c.value, x, c.modifier),
    "composite": lambda c, x, now: composite_condition(c, x, now),
}


def instant_condition(column, value: v.DateValue, now: datetime) -> ColumnElement[bool]:
    """A stored instant (`_lastUpdated`) as a point, against a prefixed search range."""
    start, end = value.range.start, value.range.end
    if value.prefix == "ap":
        low, high = _approx(value, now)
        return and_(column >= low, column < high)
    return {
        "eq": and_(column >= start, column < end),
        "ne": or_(column < start, column >= end),
        "gt": column >= end, "sa": column >= end, "ge": column >= start,
        "lt": column < start, "eb": column < start, "le": column < end,
    }[value.prefix]


def _approx(value: v.DateValue, now: datetime) -> tuple | None:
    """`ap`: the search range widened by 10% of its distance from now, at least a day (search.html#prefix)."""
    if value.prefix != "ap":
        return None
    widen = max(abs(now - value.range.start) / 10, timedelta(days=1))
    return value.range.start - widen, value.range.end + widen


def _is_index_criterion(criterion) -> bool:
    return isinstance(criterion, Criterion) and criterion.param is not None and (
        bool(criterion.values) or criterion.modifier == "missing")


def ids_matching(resource_type: str, criterion, now: datetime, access: Access = ALL) -> Select:
    """Ids of the current resources of one type that match a criterion (for chains and `_has`), among
    those the grant `access` may search, so that a chain cannot probe what the grant does not reach.

    A positive index criterion is answered by the index table alone: a deleted resource has no rows.
    """
    if _is_index_criterion(criterion):
        table, param, row_condition, negated = _index_rows(criterion, now)
        if not negated:
            stmt = select(table.c.id).where(table.c.resource_type == resource_type, table.c.param == param,
                                            row_condition)
            return stmt if access.unrestricted else stmt.where(visible(access, table, "s", now, condition))
    inner = R.alias()
    stmt = select(inner.c.id).where(inner.c.resource_type == resource_type, inner.c.deleted == false(),
                                    condition(inner, resource_type, criterion, now, access))
    return stmt if access.unrestricted else stmt.where(visible(access, inner, "s", now, condition))


def condition(outer, scope: Scope, criterion, now: datetime, access: Access = ALL) -> ColumnElement[bool]:
    """One criterion as a condition on the resource alias `outer`; chains and `_has` look only at what
    `access` may search."""
    if isinstance(criterion, Chain):
        options = [and_(REF.c.target_type == target,
                        REF.c.target_id.in_(ids_matching(target, criterion.inner, now, access)))
                   for target in criterion.target_types]
        return _rows_match(outer, scope, REF, criterion.name, or_(*options))
    if isinstance(criterion, Has):
        sources = ids_matching(criterion.source_type, criterion.inner, now, access)
        targets = select(REF.c.target_id).where(REF.c.resource_type == criterion.source_type,
                                                REF.c.param == criterion.reference, REF.c.id.in_(sources))
        if not isinstance(scope, str):
            return tuple_(outer.c.resource_type, outer.c.id).in_(
                targets.with_only_columns(REF.c.target_type, REF.c.target_id))
        return outer.c.id.in_(targets.where(REF.c.target_type == scope))
    if criterion.name == "_id":
        matched = outer.c.id.in_(criterion.values) if criterion.values else false()
        return not_(matched) if criterion.modifier == "not" else matched
    if criterion.name == "_lastUpdated":
        if criterion.modifier == "missing":  # every resource has one
            return false() if criterion.values[0] else true()
        return or_(*(instant_condition(outer.c.last_updated, x, now) for x in criterion.values))
    if criterion.name == "_list":
        members = select(REF.c.target_type, REF.c.target_id).where(
            REF.c.resource_type == "List", REF.c.id.in_(criterion.values), REF.c.param == "item")
        if not isinstance(scope, str):
            return tuple_(outer.c.resource_type, outer.c.id).in_(members)
        return outer.c.id.in_(members.with_only_columns(REF.c.target_id).where(REF.c.target_type == scope))
    if not _is_index_criterion(criterion):
        return true()  # every value was empty: the parameter selects nothing out
    table, param, row_condition, negated = _index_rows(criterion, now)
    matched = _rows_match(outer, scope, table, param, row_condition)
    return not_(matched) if negated else matched


def matches_from(query: SearchQuery, now: datetime) -> tuple[FromClause, SearchQuery]:
    """What a search's matches are drawn from, and the criteria left to check on them.

    Index rows exist for current resources only, so a search need not touch the resource table before it
    reads the page's bodies: a compartment search starts from its owner's membership rows, and a type
    search from the rows of one of its criteria (a reference to a given resource when there is one: a
    patient's few hundred rows, rather than every row of a common code). `_lastUpdated`, a resource column
    (as a criterion or a sort key), and searches with only negated criteria use the resource table.
    """
    if any(isinstance(c, Criterion) and c.name == "_lastUpdated" for c in query.criteria) or any(
            k.name == "_lastUpdated" for k in query.sort):  # index rows carry no lastUpdated to sort by
        return R, query
    if query.compartment is not None:
        return CM, query
    if not isinstance(query.resource_type, str):
        return R, query
    drivers = [c for c in query.criteria if _is_index_criterion(c) and not _negated(c) and c.modifier != "missing"]
    if not drivers:
        return R, query
    driver = min(drivers, key=lambda c: 0 if c.type == "reference" and all(
        getattr(x, "id", None) for x in c.values) else 1)
    table, param, row_condition, _ = _index_rows(driver, now)
    rows = (select(table.c.resource_type, table.c.id)
            .where(table.c.resource_type == query.resource_type, table.c.param == param, row_condition)
            .distinct().subquery("matches"))
    return rows, replace(query, criteria=tuple(c for c in query.criteria if c is not driver))


def where_clause(query: SearchQuery, now: datetime, outer=R, access: Access = ALL) -> list[ColumnElement[bool]]:
    """The conditions on `outer` (the resource table or compartment rows) that make a match the grant
    `access` may see."""
    scope: Scope = query.resource_type if query.resource_type is not None else (query.types or None)
    clauses: list[ColumnElement[bool]] = []
    if not access.unrestricted:
        clauses.append(visible(access, outer, "s", now, condition))
    if outer is R:
        clauses.append(outer.c.deleted == false())
    if query.resource_type is not None:
        clauses.append(outer.c.resource_type == query.resource_type)
    elif query.types:
        clauses.append(outer.c.resource_type.in_(query.types))
    if query.compartment is not None:
        owner_type, owner_id = query.compartment
        clauses += [CM.c.compartment_id == owner_id, CM.c.compartment_type == owner_type]
        if outer is R:  # one membership row per owner: a join, not IN (see matches_from)
            clauses += [CM.c.resource_type == outer.c.resource_type, CM.c.id == outer.c.id]
    if query.care_period is not None:
        clauses.append(_in_care_period(outer, *query.care_period))
    clauses.extend(condition(outer, scope, c, now, access) for c in query.criteria)
    return clauses


def _in_care_period(outer, start: datetime | None, end: datetime | None) -> ColumnElement[bool]:
    """No `date` index row, or one overlapping [start, end) (patient-operation-everything.html)."""
    dated = exists().where(D.c.resource_type == outer.c.resource_type, D.c.id == outer.c.id, D.c.param == "date")
    overlap = [D.c.resource_type == outer.c.resource_type, D.c.id == outer.c.id, D.c.param == "date"]
    if start is not None:
        overlap.append(D.c.high > start)
    if end is not None:
        overlap.append(D.c.low < end)
    return or_(not_(dated), exists().where(*overlap))


# -- sorting and keyset paging ----------------------------------------------------------------------------
_SORT_COLUMN = {"string": (S, "value"), "token": (T, "code"), "date": (D, "low"), "number": (N, "low"),
                "quantity": (Q, "low"), "uri": (U, "value")}


def sort_expression(key: SortKey, outer=R):
    """A resource's value for a sort key: its smallest (ascending) or largest (descending) index value."""
    if key.name == "_id":
        return outer.c.id
    if key.name == "_lastUpdated":
        return outer.c.last_updated
    aggregate = func.max if key.descending else func.min
    if key.type == "reference":
        table, column = REF, func.coalesce(REF.c.url, REF.c.target_type + "/" + REF.c.target_id)
    else:
        table, name = _SORT_COLUMN[key.type]
        column = table.c[name]
    return (select(aggregate(column)).where(table.c.resource_type == outer.c.resource_type, table.c.id == outer.c.id,
                                            table.c.param == key.name).scalar_subquery())


def order_terms(keys: list[tuple[object, bool]], backwards: bool, type_column, id_column) -> list:
    """ORDER BY terms: each key with missing values last (first when paging backwards), then type and id."""
    terms = []
    for expr, descending in keys:
        terms.append(expr.is_(None).desc() if backwards else expr.is_(None))
        terms.append(expr.desc() if descending != backwards else expr.asc())
    terms += [type_column.desc(), id_column.desc()] if backwards else [type_column, id_column]
    return terms


def keyset_condition(keys: list[tuple[object, bool]], cursor: list, backwards: bool,
                     outer=R) -> ColumnElement[bool]:
    """Rows strictly after (or, `backwards`, before) the cursor row in the search's order."""
    *values, last_type, last_id = cursor
    kind, id = outer.c.resource_type, outer.c.id
    tail = or_(kind > last_type, and_(kind == last_type, id > last_id)) if not backwards \
        else or_(kind < last_type, and_(kind == last_type, id < last_id))
    for (expr, descending), value in reversed(list(zip(keys, values, strict=True))):
        if value is None:
            # Missing values sort last: after a missing one come only missing ones; before it, all values.
            beyond = false() if not backwards else expr.isnot(None)
            same = expr.is_(None)
        else:
            forward = expr < value if descending else expr > value
            backward = expr > value if descending else expr < value
            beyond = or_(expr.is_(None), forward) if not backwards else backward
            same = expr == value
        tail = or_(beyond, and_(same, tail))
    return tail


_BODY = R.alias("body")  # immutable, so built once: each alias costs a column collection


def select_page(query: SearchQuery, now: datetime, limit: int, cursor: list | None, backwards: bool,
                with_total: bool, access: Access = ALL) -> Select:
    """One page of matches in the search's order, from the keyset cursor on; each row carries its sort keys
    (`k0`, `k1`…) for the next cursor and, when asked (first pages only), the number of all matches.

    The page is chosen by a narrow inner query (type, id, keys, and `count(*) OVER ()`, which rides on the
    sort the order needs); only its rows' bodies are then read, so no body is carried through the sort.
    """
    outer, query = matches_from(query, now)
    keys = [(sort_expression(k, outer), k.descending) for k in query.sort]
    columns = [outer.c.resource_type, outer.c.id, *(expr.label(f"k{i}") for i, (expr, _) in enumerate(keys))]
    if with_total:
        columns.append(func.count().over().label("total"))
    inner = select(*columns).where(*where_clause(query, now, outer, access))
    if cursor is not None:
        inner = inner.where(keyset_condition(keys, cursor, backwards, outer))
    page = inner.order_by(*order_terms(keys, backwards, outer.c.resource_type, outer.c.id)).limit(limit) \
        .subquery("page")
    body = _BODY
    page_keys = [(page.c[f"k{i}"], descending) for i, (_, descending) in enumerate(keys)]
    return (
        select(page, body.c.version_id, body.c.last_updated, body.c.content)
        .join_from(page, body, and_(body.c.resource_type == page.c.resource_type, body.c.id == page.c.id))
        .order_by(*order_terms(page_keys, backwards, page.c.resource_type, page.c.id))
    )


def select_count(query: SearchQuery, now: datetime, access: Access = ALL) -> Select:
    outer, query = matches_from(query, now)
    return select(func.count()).select_from(outer).where(*where_clause(query, now, outer, access))


def select_ids(query: SearchQuery, now: datetime, limit: int | None, access: Access = ALL) -> Select:
    """Ids of matches of a type search (conditional interactions, `:in` ValueSets, `_total=estimate`)."""
    stmt = select(R.c.id).where(*where_clause(query, now, R, access)).order_by(R.c.id)
    return stmt.limit(limit) if limit is not None else stmt
