"""Current resources, their versions, and the token index.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RESOURCE_JSON = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", RESOURCE_JSON),
    )
    op.create_index("ix_resource_type_updated", "resource", ["resource_type", "last_updated"])
    op.create_table(
        "resource_version",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("content", RESOURCE_JSON),
    )
    op.create_index("ux_version_resource", "resource_version", ["resource_type", "id", "version_id"], unique=True)
    op.create_index("ix_version_type_seq", "resource_version", ["resource_type", "seq"])
    op.create_index("ix_version_updated", "resource_version", ["last_updated"])
    op.create_table(
        "token_index",
        sa.Column("row_id", SEQ, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(100), nullable=False),
        sa.Column("system", sa.String(1024)),
        sa.Column("code", sa.String(1024)),
    )
    op.create_index("ix_token_lookup", "token_index", ["resource_type", "param", "code", "system"])
    op.create_index("ix_token_resource", "token_index", ["resource_type", "id"])


def downgrade() -> None:
    op.drop_table("token_index")
    op.drop_table("resource_version")
    op.drop_table("resource")
