"""The authorization server's tables: clients, signing keys, issued tokens, client assertion ids seen.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_client",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("client_type", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("redirect_uris", sa.Text, nullable=False),
        sa.Column("jwks", sa.Text),
        sa.Column("jwks_url", sa.String(2000)),
        sa.Column("secret_hash", sa.String(200)),
        sa.Column("launch_uri", sa.String(2000)),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    op.create_table(
        "oauth_signing_key",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_jwk", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("retired", sa.DateTime),
    )
    op.create_table(
        "oauth_token",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("grant_id", sa.String(64)),
        sa.Column("revoked_at", sa.DateTime),
    )
    op.create_index("ix_oauth_token_client_id", "oauth_token", ["client_id"])
    op.create_index("ix_oauth_token_grant_id", "oauth_token", ["grant_id"])
    op.create_index("ix_oauth_token_revoked_at", "oauth_token", ["revoked_at"])
    op.create_index("ix_oauth_token_expires_at", "oauth_token", ["expires_at"])
    op.create_table(
        "oauth_assertion",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_oauth_assertion_expires_at", "oauth_assertion", ["expires_at"])


def downgrade() -> None:
    for table in ("oauth_assertion", "oauth_token", "oauth_signing_key", "oauth_client"):
        op.drop_table(table)
