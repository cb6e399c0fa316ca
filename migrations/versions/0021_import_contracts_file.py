"""Imports: a second file of contracts, and each row error's file.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-24 11:09:01.930496
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "contracts_filename", sa.String(length=255), server_default="", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("contracts_encoding", sa.String(length=20), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("contracts_delimiter", sa.String(length=1), server_default="", nullable=False)
        )

    with op.batch_alter_table("import_row_errors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("file", sa.Integer(), server_default="1", nullable=False))
        batch_op.drop_index("ix_import_row_errors_job_line")
        batch_op.create_index(
            "ix_import_row_errors_job_line", ["job_id", "file", "line", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("import_row_errors", schema=None) as batch_op:
        batch_op.drop_index("ix_import_row_errors_job_line")
        batch_op.create_index("ix_import_row_errors_job_line", ["job_id", "line"], unique=False)
        batch_op.drop_column("file")

    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.drop_column("contracts_delimiter")
        batch_op.drop_column("contracts_encoding")
        batch_op.drop_column("contracts_filename")
