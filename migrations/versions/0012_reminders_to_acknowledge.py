"""reminders to acknowledge

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 02:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Automations are a handful of rows: batch mode (a table copy on SQLite) takes the key.
    with op.batch_alter_table("automations") as batch_op:
        batch_op.add_column(sa.Column("letter_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_automations_letter_id_letters", "letters",
                                    ["letter_id"], ["id"])  # fmt: skip
    # The ledger may be large: a plain ADD COLUMN and CREATE INDEX, never a table copy.
    op.add_column("deliveries", sa.Column("reminds_id", sa.Integer(), nullable=True))
    op.create_index("uq_deliveries_step_reminds", "deliveries",
                    ["automation_step_id", "reminds_id"], unique=True)  # fmt: skip


def downgrade() -> None:
    op.drop_index("uq_deliveries_step_reminds", table_name="deliveries")
    op.drop_column("deliveries", "reminds_id")
    with op.batch_alter_table("automations") as batch_op:
        batch_op.drop_constraint("fk_automations_letter_id_letters", type_="foreignkey")
        batch_op.drop_column("letter_id")
