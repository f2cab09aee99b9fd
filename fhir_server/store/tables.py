"""SQL tables: current resources, every version, and typed search indexes (DESIGN.md, Storage).

Resource bodies are JSONB on PostgreSQL and JSON text on SQLite. The engine's JSON serialiser is the
identity (see db.py): the repository hands over the canonical JSON text it made once, and reads get that
text back without parsing it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String
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


class TokenIndex(SQLModel, table=True):
    """Token search index rows (search.html#token): one per (resource, parameter, system, code)."""

    __tablename__ = "token_index"
    row_id: int | None = Field(default=None, sa_column=Column(SeqType, primary_key=True, autoincrement=True))
    resource_type: str = Field(sa_column=Column(String(64), nullable=False))
    id: str = Field(sa_column=Column(String(64), nullable=False))
    param: str = Field(sa_column=Column(String(100), nullable=False))
    system: str | None = Field(default=None, sa_column=Column(String(1024)))
    code: str | None = Field(default=None, sa_column=Column(String(1024)))

    __table_args__ = (
        Index("ix_token_lookup", "resource_type", "param", "code", "system"),
        Index("ix_token_resource", "resource_type", "id"),
    )


metadata = SQLModel.metadata
resource_table = Resource.__table__
version_table = ResourceVersion.__table__
token_table = TokenIndex.__table__
ALL_TABLES = (resource_table, version_table, token_table)
