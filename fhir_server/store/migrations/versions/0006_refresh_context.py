"""The launch context a refresh token carries on: the encounter and whether the app shows a patient banner.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_refresh") as table:
        table.add_column(sa.Column("encounter", sa.String(64)))
        table.add_column(sa.Column("need_patient_banner", sa.Boolean, nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("oauth_refresh") as table:
        table.drop_column("need_patient_banner")
        table.drop_column("encounter")
