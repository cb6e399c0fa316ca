"""letter needs: whether a letter version needs a contract (contact | contract)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00.000000
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Versions saved before this revision: any contract field inside a Jinja tag counts, guarded
# or not. Erring towards "contract" only stops a new campaign pairing it with a contacts
# segment; saving the letter again works out the exact need.
_CONTRACT_TAG = re.compile(r"({{|{%)[^}]*\b(contract|renewal_url)\b[^}]*(}}|%})")


def upgrade() -> None:
    with op.batch_alter_table("letter_versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("needs", sa.String(length=20), server_default="contact", nullable=False)
        )
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, subject, compiled_html, compiled_text FROM letter_versions")
    )
    needing = [row.id for row in rows
               if any(_CONTRACT_TAG.search(part or "") for part in row[1:])]  # fmt: skip
    if needing:
        bind.execute(
            sa.text("UPDATE letter_versions SET needs = 'contract' WHERE id = :id"),
            [{"id": version_id} for version_id in needing],
        )


def downgrade() -> None:
    with op.batch_alter_table("letter_versions", schema=None) as batch_op:
        batch_op.drop_column("needs")
