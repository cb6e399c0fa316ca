"""service grants, support triggers, surveys and settings

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-24 07:16:11.961367
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import campaigns.db

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "service_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_fee", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), server_default="EUR", nullable=False),
        sa.Column(
            "packages",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default=sa.text("'[]'"),
            nullable=False,
        ),
        sa.Column("policy_text", sa.Text(), server_default="", nullable=False),
        sa.Column("updated_at", campaigns.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_service_settings_single_row")),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_service_settings_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_settings")),
    )
    op.create_table(
        "survey_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("scale", sa.String(length=10), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("responded_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("changed_at", campaigns.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("remote_addr", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_survey_responses_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_survey_responses_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_responses")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_survey_responses_delivery_id")),
    )
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_survey_responses_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_survey_responses_responded_at"), ["responded_at"], unique=False
        )

    with op.batch_alter_table("automations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("threshold", sa.Integer(), nullable=True))

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grant_points", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("grant_loyal_points", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("grant_loyal_years", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("grant_expires_days", sa.Integer(), nullable=True))

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("occasion", sa.String(length=40), nullable=True))
        batch_op.create_index(
            "uq_deliveries_step_occasion", ["automation_step_id", "occasion"], unique=True
        )

    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("survey_scale", sa.String(length=10), server_default="csat", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.drop_column("survey_scale")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("uq_deliveries_step_occasion")
        batch_op.drop_column("occasion")

    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("grant_expires_days")
        batch_op.drop_column("grant_loyal_years")
        batch_op.drop_column("grant_loyal_points")
        batch_op.drop_column("grant_points")

    with op.batch_alter_table("automations", schema=None) as batch_op:
        batch_op.drop_column("threshold")

    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_responses_responded_at"))
        batch_op.drop_index(batch_op.f("ix_survey_responses_contact_id"))

    op.drop_table("survey_responses")
    op.drop_table("service_settings")
