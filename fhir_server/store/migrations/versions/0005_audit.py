"""The audit log (store/audit.py): its events and the head of their hash chain.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("recorded", sa.DateTime, nullable=False),
        sa.Column("type", sa.String(64)),
        sa.Column("subtype", sa.String(64)),
        sa.Column("action", sa.String(1)),
        sa.Column("outcome", sa.String(2)),
        sa.Column("patient", sa.String(64)),
        sa.Column("agent", sa.String(200)),
        sa.Column("altid", sa.String(100)),
        sa.Column("entity", sa.String(200)),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_patient", "audit_event", ["patient", "recorded"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_table("audit_event")
