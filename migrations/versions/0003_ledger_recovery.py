"""ledger recovery: claimed_by, in_flight_at, due_at, worker heartbeats

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 13:21:25.701718
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import campaigns.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("seen_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker", name=op.f("pk_worker_heartbeats")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("in_flight_at", campaigns.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("due_at", campaigns.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_deliveries_state_due_at", ["state", "due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_state_due_at")
        batch_op.drop_column("due_at")
        batch_op.drop_column("in_flight_at")
        batch_op.drop_column("claimed_by")

    op.drop_table("worker_heartbeats")
