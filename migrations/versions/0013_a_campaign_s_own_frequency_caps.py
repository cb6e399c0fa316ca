"""a campaign's own frequency caps

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("cap_per_week", sa.Integer(), nullable=True))
    op.add_column("campaigns", sa.Column("cap_gap_hours", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch_op:
        batch_op.drop_column("cap_gap_hours")
        batch_op.drop_column("cap_per_week")
