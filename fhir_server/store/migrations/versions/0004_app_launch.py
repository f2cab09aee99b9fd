"""Users, pending authorization requests, authorization codes, refresh tokens and EHR launch contexts,
for the SMART app launch.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("username", sa.String(100), primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("practitioner", sa.String(100)),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    op.create_table(
        "oauth_pending",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("username", sa.String(100)),
        sa.Column("patient", sa.String(64)),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_oauth_pending_expires_at", "oauth_pending", ["expires_at"])
    op.create_table(
        "oauth_code",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("redirect_uri", sa.String(2000), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("patient", sa.String(64)),
        sa.Column("nonce", sa.String(255)),
        sa.Column("encounter", sa.String(64)),
        sa.Column("need_patient_banner", sa.Boolean, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
    )
    op.create_index("ix_oauth_code_expires_at", "oauth_code", ["expires_at"])
    op.create_table(
        "oauth_refresh",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("patient", sa.String(64)),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_index("ix_oauth_refresh_grant_id", "oauth_refresh", ["grant_id"])
    op.create_table(
        "oauth_launch",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("patient", sa.String(64)),
        sa.Column("encounter", sa.String(64)),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    for table in ("oauth_launch", "oauth_refresh", "oauth_code", "oauth_pending", "app_user"):
        op.drop_table(table)
