"""Service settings: the policy text in other languages.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-24 11:27:02.052314
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("service_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "policy_translations",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default=sa.text("'{}'"),
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("service_settings", schema=None) as batch_op:
        batch_op.drop_column("policy_translations")
