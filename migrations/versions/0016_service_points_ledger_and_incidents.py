"""service points ledger and incidents

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-24 04:34:32.737012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import campaigns.db

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("chargeable", sa.Boolean(), nullable=False),
        sa.Column("points_used", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("opened_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", campaigns.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("created_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_incidents_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_incidents_contract_id_contracts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_incidents_idempotency_key")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_closed_at"), ["closed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_contact_id"), ["contact_id"], unique=False)

    op.create_table(
        "points_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("contract_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("occurred_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_points_entries_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_points_entries_contact_id_contacts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_points_entries_contract_id_contracts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_points_entries_delivery_id_deliveries"),
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_points_entries_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_points_entries_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_entries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_points_entries_idempotency_key")),
    )
    with op.batch_alter_table("points_entries", schema=None) as batch_op:
        batch_op.create_index("ix_points_entries_contact_id_id", ["contact_id", "id"], unique=False)
        batch_op.create_index(
            "uq_points_entries_delivery",
            ["delivery_id"],
            unique=True,
            sqlite_where=sa.text("delivery_id IS NOT NULL"),
            postgresql_where=sa.text("delivery_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("points_entries", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_points_entries_delivery",
            sqlite_where=sa.text("delivery_id IS NOT NULL"),
            postgresql_where=sa.text("delivery_id IS NOT NULL"),
        )
        batch_op.drop_index("ix_points_entries_contact_id_id")

    op.drop_table("points_entries")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_contact_id"))
        batch_op.drop_index(batch_op.f("ix_incidents_closed_at"))

    op.drop_table("incidents")
