"""one bounce and one complaint event per letter at most

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 23:22:57.998880
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEEDBACK = "kind IN ('bounce', 'complaint')"


def upgrade() -> None:
    # Two receivers may have recorded the same report before this index: keep the first.
    op.execute(
        f"DELETE FROM events WHERE {FEEDBACK} AND delivery_id IS NOT NULL AND id NOT IN "  # noqa: S608
        f"(SELECT MIN(id) FROM events WHERE {FEEDBACK} AND delivery_id IS NOT NULL "
        "GROUP BY delivery_id, kind)"
    )
    # A plain CREATE INDEX, not batch mode (which may copy the table on SQLite).
    op.create_index(
        "uq_events_delivery_feedback", "events", ["delivery_id", "kind"], unique=True,
        sqlite_where=sa.text(FEEDBACK), postgresql_where=sa.text(FEEDBACK),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_events_delivery_feedback", "events")
