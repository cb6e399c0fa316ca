"""contacts search indexes (PostgreSQL)

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-24 08:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The contacts list searches by the start of an address or a name (LIKE 'x%'): PostgreSQL
# answers from these instead of reading every contact (500 ms at a million); SQLite's LIKE
# ignores case and would not use them (campaigns.schema.POSTGRESQL_ONLY_INDEXES).
INDEXES = {
    "ix_contacts_email_prefix": "email text_pattern_ops",
    "ix_contacts_first_name_prefix": "lower(first_name) text_pattern_ops",
    "ix_contacts_last_name_prefix": "lower(last_name) text_pattern_ops",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, expression in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON contacts ({expression})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX {name}")
