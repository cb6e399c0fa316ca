"""automation send windows, holdout and lateness

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 01:27:55.247678
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode (a table copy on SQLite) is fine here: automations are a handful of rows,
    # and it is the only way SQLite takes the check constraints.
    with op.batch_alter_table("automations") as batch_op:
        batch_op.add_column(sa.Column("holdout_percent", sa.Integer(), server_default="0",
                                      nullable=False))  # fmt: skip
        batch_op.add_column(sa.Column("max_late_days", sa.Integer(), server_default="3",
                                      nullable=False))  # fmt: skip
        batch_op.add_column(sa.Column("window_days", sa.String(length=7),
                                      server_default="1234567", nullable=False))  # fmt: skip
        batch_op.add_column(sa.Column("window_start_hour", sa.Integer(), server_default="0",
                                      nullable=False))  # fmt: skip
        batch_op.add_column(sa.Column("window_end_hour", sa.Integer(), server_default="24",
                                      nullable=False))  # fmt: skip
        batch_op.create_check_constraint(
            "holdout_range", "holdout_percent >= 0 AND holdout_percent <= 50"
        )
        batch_op.create_check_constraint(
            "window_hours",
            "window_start_hour >= 0 AND window_start_hour < window_end_hour "
            "AND window_end_hour <= 24",
        )


def downgrade() -> None:
    with op.batch_alter_table("automations") as batch_op:
        batch_op.drop_constraint("window_hours", type_="check")
        batch_op.drop_constraint("holdout_range", type_="check")
        for column in ("window_end_hour", "window_start_hour", "window_days", "max_late_days",
                       "holdout_percent"):  # fmt: skip
            batch_op.drop_column(column)
