"""SQL tables: current resources, every version, and typed search indexes (DESIGN.md, Storage).

Resource bodies are JSONB on PostgreSQL and JSON text on SQLite. The engine's JSON serialiser is the
identity (see db.py): the repository hands over the canonical JSON text it made once, and reads get that
text back without parsing it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, DateTime, Float, Index, Integer, String, Table, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

ResourceJSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
SeqType = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


class Resource(SQLModel, table=True):
    """The current version of each resource; deleted ones stay as tombstones so reads can answer 410."""

    __tablename__ = "resource"
    resource_type: str = Field(sa_column=Column(String(64), primary_key=True))
    id: str = Field(sa_column=Column(String(64), primary_key=True))
    version_id: int = Field(sa_column=Column(Integer, nullable=False))
    last_updated: datetime = Field(sa_column=Column(DateTime, nullable=False))
    deleted: bool = Field(default=False, nullable=False)
    content: str | None = Field(default=None, sa_column=Column(ResourceJSON))

    __table_args__ = (Index("ix_resource_type_updated", "resource_type", "last_updated"),)


class ResourceVersion(SQLModel, table=True):
    """Every version ever written (http.html#history); `seq` orders history and pages it stably."""

    __tablename__ = "resource_version"
    seq: int | None = Field(default=None, sa_column=Column(SeqType, primary_key=True, autoincrement=True))
    resource_type: str = Field(sa_column=Column(String(64), nullable=False))
    id: str = Field(sa_column=Column(String(64), nullable=False))
    version_id: int = Field(sa_column=Column(Integer, nullable=False))
    last_updated: datetime = Field(sa_column=Column(DateTime, nullable=False))
    method: str = Field(sa_column=Column(String(8), nullable=False))
    content: str | None = Field(default=None, sa_column=Column(ResourceJSON))

    __table_args__ = (
        Index("ux_version_resource", "resource_type", "id", "version_id", unique=True),
        Index("ix_version_type_seq", "resource_type", "seq"),
        Index("ix_version_updated", "last_updated"),
    )


metadata = SQLModel.metadata
resource_table = Resource.__table__
version_table = ResourceVersion.__table__


def _index_table(name: str, *columns: Column, lookup: tuple[str, ...], extra: tuple[Index, ...] = (),
                 lookup_ops: dict[str, str] | None = None, lookup_where: str | None = None) -> Table:
    """A search index table (search.html#ptypes): rows of (resource, parameter, typed value).

    `lookup` indexes search by value; `ix_<name>_resource` finds a resource's rows, to replace them on
    update and to read sort keys and references for `_sort` and `_include`. No primary key: rows are only
    ever found through these indexes, and a sequence per row would cost every write.
    """
    return Table(
        name, metadata,
        Column("resource_type", String(64), nullable=False),
        Column("id", String(64), nullable=False),
        Column("param", String(100), nullable=False),
        *columns,
        Index(f"ix_{name}_lookup", "resource_type", "param", *lookup, postgresql_ops=lookup_ops or {},
              postgresql_where=text(lookup_where) if lookup_where else None,
              sqlite_where=text(lookup_where) if lookup_where else None),
        Index(f"ix_{name}_resource", "resource_type", "id", "param"),
        *extra,
    )


TEXT = String(512)
string_table = _index_table(
    "string_index", Column("value", TEXT, nullable=False), Column("exact", TEXT, nullable=False),
    # varchar_pattern_ops lets `value LIKE 'abc%'` use the index whatever the database's collation.
    lookup=("value",), lookup_ops={"value": "varchar_pattern_ops"},
)
token_table = _index_table("token_index", Column("system", TEXT), Column("code", TEXT), lookup=("code", "system"))
date_table = _index_table(
    "date_index", Column("low", DateTime, nullable=False), Column("high", DateTime, nullable=False),
    lookup=("low",), extra=(Index("ix_date_index_high", "resource_type", "param", "high"),),
)
reference_table = _index_table(
    "reference_index", Column("target_type", String(64)), Column("target_id", String(512)), Column("url", TEXT),
    Column("version", String(64)), lookup=("url",),
    extra=(Index("ix_reference_index_target", "target_id", "target_type", "resource_type", "param"),),
    # Most references are local and have no url: only the others are indexed by it, which spares most
    # writes an index insert.
    lookup_where="url IS NOT NULL",
)
number_table = _index_table("number_index", Column("low", Float, nullable=False),
                            Column("high", Float, nullable=False), lookup=("low",))
quantity_table = _index_table(
    "quantity_index", Column("system", TEXT), Column("code", TEXT), Column("unit", TEXT),
    Column("low", Float, nullable=False), Column("high", Float, nullable=False), lookup=("low",),
)
uri_table = _index_table("uri_index", Column("value", TEXT, nullable=False), lookup=("value",))
composite_table = _index_table(
    "composite_index", Column("a_system", TEXT), Column("a_code", TEXT), Column("b_system", TEXT),
    Column("b_code", TEXT), Column("b_unit", TEXT), Column("b_low", Float), Column("b_high", Float),
    Column("b_start", DateTime), Column("b_end", DateTime), Column("b_text", TEXT), lookup=("a_code", "a_system"),
)
compartment_table = Table(
    # Which compartments each resource is in (compartmentdefinition.html), for compartment search and
    # Patient/$everything: one lookup by owner instead of an OR over every type's compartment parameters.
    "compartment_index", metadata,
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("compartment_type", String(64), nullable=False),
    Column("compartment_id", String(512), nullable=False),
    Index("ix_compartment_index_owner", "compartment_id", "compartment_type", "resource_type"),
    Index("ix_compartment_index_resource", "resource_type", "id"),
)
# Index table by the name search/index.py gives its rows.
INDEX_TABLES = {
    "string": string_table, "token": token_table, "date": date_table, "reference": reference_table,
    "number": number_table, "quantity": quantity_table, "uri": uri_table, "composite": composite_table,
    "compartment": compartment_table,
}
ALL_TABLES = (resource_table, version_table, *INDEX_TABLES.values())
# Per resource type, a digest of the SearchParameters its index rows were made with (store/reindex.py).
index_state_table = Table(
    "search_index_state", metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("digest", String(64), nullable=False),
)
