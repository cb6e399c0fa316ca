"""conversions per term, report cells

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24 04:09:33.309808
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import campaigns.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_activity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("automation_step_id", sa.Integer(), nullable=True),
        sa.Column("segment_id", sa.Integer(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("clicked", sa.Integer(), nullable=False),
        sa.Column("renewed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_activity")),
    )
    with op.batch_alter_table("report_activity", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_activity_automation_step_id"),
            ["automation_step_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_report_activity_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index("ix_report_activity_day", ["day"], unique=False)

    op.create_table(
        "report_cells",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("automation_step_id", sa.Integer(), nullable=True),
        sa.Column("segment_id", sa.Integer(), nullable=True),
        sa.Column("letter_version_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("audience", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.Column("held_out", sa.Integer(), nullable=False),
        sa.Column("deferred", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("opened_machine", sa.Integer(), nullable=False),
        sa.Column("clicked", sa.Integer(), nullable=False),
        sa.Column("clicked_machine", sa.Integer(), nullable=False),
        sa.Column("renewal_clicks", sa.Integer(), nullable=False),
        sa.Column("acknowledged", sa.Integer(), nullable=False),
        sa.Column("unsubscribed", sa.Integer(), nullable=False),
        sa.Column("bounced", sa.Integer(), nullable=False),
        sa.Column("complained", sa.Integer(), nullable=False),
        sa.Column("renewed_sent", sa.Integer(), nullable=False),
        sa.Column("renewed_held_out", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_cells")),
    )
    with op.batch_alter_table("report_cells", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_cells_automation_step_id"), ["automation_step_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_report_cells_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index("ix_report_cells_day", ["day"], unique=False)

    op.create_table(
        "report_refreshes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("ledger_rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_refreshes")),
    )
    op.create_table(
        "report_revenue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("automation_step_id", sa.Integer(), nullable=True),
        sa.Column("segment_id", sa.Integer(), nullable=True),
        sa.Column("letter_version_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("held_out", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("renewed", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("outcome_revenue", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_revenue")),
    )
    with op.batch_alter_table("report_revenue", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_revenue_automation_step_id"), ["automation_step_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_report_revenue_campaign_id"), ["campaign_id"], unique=False
        )

    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("term", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("first_delivery_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("touches", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column(
                "recorded_at",
                campaigns.db.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.func.current_timestamp(),
            )
        )
        batch_op.create_index(
            batch_op.f("ix_conversions_occurred_at"), ["occurred_at"], unique=False
        )
        batch_op.create_index("uq_conversions_contract_term", ["contract_id", "term"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("conversions", schema=None) as batch_op:
        batch_op.drop_index("uq_conversions_contract_term")
        batch_op.drop_index(batch_op.f("ix_conversions_occurred_at"))
        batch_op.drop_column("recorded_at")
        batch_op.drop_column("touches")
        batch_op.drop_column("first_delivery_id")
        batch_op.drop_column("term")

    with op.batch_alter_table("report_revenue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_revenue_campaign_id"))
        batch_op.drop_index(batch_op.f("ix_report_revenue_automation_step_id"))

    op.drop_table("report_revenue")
    op.drop_table("report_refreshes")
    with op.batch_alter_table("report_cells", schema=None) as batch_op:
        batch_op.drop_index("ix_report_cells_day")
        batch_op.drop_index(batch_op.f("ix_report_cells_campaign_id"))
        batch_op.drop_index(batch_op.f("ix_report_cells_automation_step_id"))

    op.drop_table("report_cells")
    with op.batch_alter_table("report_activity", schema=None) as batch_op:
        batch_op.drop_index("ix_report_activity_day")
        batch_op.drop_index(batch_op.f("ix_report_activity_campaign_id"))
        batch_op.drop_index(batch_op.f("ix_report_activity_automation_step_id"))

    op.drop_table("report_activity")
