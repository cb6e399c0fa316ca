"""letter approvals and translations: approvals, locale variants, preheader, default locale

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import campaigns.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Saved letter content never changes in place (a change is a new version); the models refuse
# it in the ORM, and these triggers refuse it for any other SQL too.
IMMUTABLE_TABLES = ("letter_versions", "letter_variants", "links", "letter_approvals")


def upgrade() -> None:
    # Columns are only added to existing tables: on SQLite, dropping one rebuilds the table,
    # and rebuilding letter_versions would cascade-delete its links.
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("default_locale", sa.String(length=20), server_default="en", nullable=False)
        )
    with op.batch_alter_table("letter_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("preheader", sa.String(length=500), server_default="", nullable=False)
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locale", sa.String(length=20), nullable=True))

    op.create_table(
        "letter_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("locale", sa.String(length=20), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("preheader", sa.String(length=500), nullable=False),
        sa.Column("html_source", sa.Text(), nullable=False),
        sa.Column("text_source", sa.Text(), nullable=True),
        sa.Column("compiled_html", sa.Text(), nullable=False),
        sa.Column("compiled_text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["letter_versions.id"],
            name=op.f("fk_letter_variants_version_id_letter_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_variants")),
        sa.UniqueConstraint(
            "version_id", "locale", name=op.f("uq_letter_variants_version_id_locale")
        ),
    )
    op.create_table(
        "letter_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("decided_at", campaigns.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_letter_approvals_user_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["letter_versions.id"],
            name=op.f("fk_letter_approvals_version_id_letter_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_letter_approvals")),
    )
    with op.batch_alter_table("letter_approvals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_letter_approvals_version_id"), ["version_id"], unique=False
        )

    # Versions of legal letters saved before approvals existed were never approved by a
    # second user: they need it now before a new campaign may use them (campaigns already
    # scheduled or running keep their version).
    op.execute(
        "UPDATE letter_versions SET requires_approval = true WHERE letter_id IN "
        "(SELECT id FROM letters WHERE category = 'legal' OR kind = 'policy')"
    )
    _create_triggers()


def _create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION refuse_update_of_saved_letter() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'saved % rows cannot be changed; save a new version "
            "instead', TG_TABLE_NAME; END $$"
        )
        for table in IMMUTABLE_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_update_of_saved_letter()"
            )
        return
    for table in IMMUTABLE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE ON {table} BEGIN "
            f"SELECT RAISE(ABORT, 'saved {table} rows cannot be changed; save a new version "
            "instead'); END"
        )


def _drop_triggers() -> None:
    for table in IMMUTABLE_TABLES:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS refuse_update_of_saved_letter()")


def downgrade() -> None:
    _drop_triggers()
    with op.batch_alter_table("letter_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_letter_approvals_version_id"))
    op.drop_table("letter_approvals")
    op.drop_table("letter_variants")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("locale")
    with op.batch_alter_table("letter_versions", schema=None) as batch_op:
        batch_op.drop_column("preheader")
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.drop_column("default_locale")
