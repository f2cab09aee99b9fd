"""Typed search index tables for every SearchParameter (search.html#ptypes), compartment membership, and
the index state digest.

The token index of 0001 is replaced (its rows had a surrogate key and only `identifier`); `fhir-server
migrate` reindexes every resource after this revision, because the stored index state is then empty.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TEXT = sa.String(512)
_STATISTICS = {
    "string_index": ("resource_type", "param", "value"),
    "token_index": ("resource_type", "param", "system", "code"),
    "date_index": ("resource_type", "param", "low"),
    "reference_index": ("resource_type", "param", "target_type", "target_id"),
    "quantity_index": ("resource_type", "param", "system", "code"),
    "uri_index": ("resource_type", "param", "value"),
    "composite_index": ("resource_type", "param", "a_system", "a_code"),
}


def _index_table(name, *columns, lookup, lookup_ops=None, lookup_where=None, extra=()):
    op.create_table(
        name,
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(100), nullable=False),
        *columns,
    )
    where = sa.text(lookup_where) if lookup_where else None
    op.create_index(f"ix_{name}_lookup", name, ["resource_type", "param", *lookup],
                    postgresql_ops=lookup_ops or {}, postgresql_where=where, sqlite_where=where)
    op.create_index(f"ix_{name}_resource", name, ["resource_type", "id", "param"])
    for index_name, index_columns in extra:
        op.create_index(index_name, name, index_columns)


def upgrade() -> None:
    op.drop_table("token_index")
    _index_table("string_index", sa.Column("value", TEXT, nullable=False), sa.Column("exact", TEXT, nullable=False),
                 lookup=["value"], lookup_ops={"value": "varchar_pattern_ops"})
    _index_table("token_index", sa.Column("system", TEXT), sa.Column("code", TEXT), lookup=["code", "system"])
    _index_table("date_index", sa.Column("low", sa.DateTime, nullable=False),
                 sa.Column("high", sa.DateTime, nullable=False), lookup=["low"],
                 extra=[("ix_date_index_high", ["resource_type", "param", "high"])])
    _index_table("reference_index", sa.Column("target_type", sa.String(64)), sa.Column("target_id", sa.String(512)),
                 sa.Column("url", TEXT), sa.Column("version", sa.String(64)), lookup=["url"],
                 lookup_where="url IS NOT NULL",
                 extra=[("ix_reference_index_target", ["target_id", "target_type", "resource_type", "param"])])
    _index_table("number_index", sa.Column("low", sa.Float, nullable=False),
                 sa.Column("high", sa.Float, nullable=False), lookup=["low"])
    _index_table("quantity_index", sa.Column("system", TEXT), sa.Column("code", TEXT), sa.Column("unit", TEXT),
                 sa.Column("low", sa.Float, nullable=False), sa.Column("high", sa.Float, nullable=False),
                 lookup=["low"])
    _index_table("uri_index", sa.Column("value", TEXT, nullable=False), lookup=["value"])
    _index_table("composite_index", sa.Column("a_system", TEXT), sa.Column("a_code", TEXT),
                 sa.Column("b_system", TEXT), sa.Column("b_code", TEXT), sa.Column("b_unit", TEXT),
                 sa.Column("b_low", sa.Float),
                 sa.Column("b_high", sa.Float), sa.Column("b_start", sa.DateTime), sa.Column("b_end", sa.DateTime),
                 sa.Column("b_text", TEXT), lookup=["a_code", "a_system"])
    op.create_table(
        "compartment_index",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("compartment_type", sa.String(64), nullable=False),
        sa.Column("compartment_id", sa.String(512), nullable=False),
    )
    op.create_index("ix_compartment_index_owner", "compartment_index",
                    ["compartment_id", "compartment_type", "resource_type"])
    op.create_index("ix_compartment_index_resource", "compartment_index", ["resource_type", "id"])
    if op.get_bind().dialect.name == "postgresql":
        # The planner multiplies the selectivities of resource_type, param and the value as if they were
        # independent, and underestimates a common code or a patient's references 10- to 30-fold; then it
        # drives a patient's search from the code. Dependency statistics correct the estimates.
        for name, columns in _STATISTICS.items():
            op.execute(f"CREATE STATISTICS st_{name} (dependencies, ndistinct) ON {', '.join(columns)} FROM {name}")
    op.create_table("search_index_state", sa.Column("resource_type", sa.String(64), primary_key=True),
                    sa.Column("digest", sa.String(64), nullable=False))


def downgrade() -> None:
    for name in ("search_index_state", "compartment_index", "composite_index", "uri_index", "quantity_index",
                 "number_index", "reference_index", "date_index", "token_index", "string_index"):
        op.drop_table(name)
    op.create_table(
        "token_index",
        sa.Column("row_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(100), nullable=False),
        sa.Column("system", sa.String(1024)),
        sa.Column("code", sa.String(1024)),
    )
    op.create_index("ix_token_lookup", "token_index", ["resource_type", "param", "code", "system"])
    op.create_index("ix_token_resource", "token_index", ["resource_type", "id"])
