"""survey responses: detractor time and the click that set them

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-24 07:22:24.345253
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import campaigns.db

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("detractor_at", campaigns.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("click_event_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_survey_responses_detractor_at"), ["detractor_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_responses_detractor_at"))
        batch_op.drop_column("click_event_id")
        batch_op.drop_column("detractor_at")
