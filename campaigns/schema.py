"""Bring a database schema to the current revision with Alembic, without Flask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Indexes only PostgreSQL has, made by migrations and not in the models (SQLite's LIKE
# ignores case and would never use them): the contacts list's search by the start of an
# address or a name (audience.contacts.search_contacts) at a million contacts.
POSTGRESQL_ONLY_INDEXES = frozenset(
    {"ix_contacts_email_prefix", "ix_contacts_first_name_prefix", "ix_contacts_last_name_prefix"}
)


def include_object(_object: Any, name: str | None, type_: str, *_args: Any) -> bool:
    """What autogenerate compares: not the PostgreSQL-only indexes."""
    return not (type_ == "index" and name in POSTGRESQL_ONLY_INDEXES)


def alembic_config(database_url: str) -> Config:
    """Build the Alembic configuration for a database URL (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply every migration up to `revision`."""
    command.upgrade(alembic_config(database_url), revision)


def revision(database_url: str, message: str) -> None:
    """Autogenerate a new migration from the difference between models and database."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
