"""the contracts a campaign letter names

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 01:39:46.177788
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, not batch mode (which may copy the ledger on SQLite).
    op.add_column("deliveries", sa.Column("contract_ids", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("deliveries", "contract_ids")
