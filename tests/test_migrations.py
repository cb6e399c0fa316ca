"""Migrations bring an empty database to exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from campaigns import schema
from campaigns.db import Base, make_engine
from campaigns.embedded.services import PostgresServer


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_on_an_empty_database_match_the_models(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database("migrations_check")
    schema.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={
                "compare_type": True, "include_object": schema.include_object})  # fmt: skip
            differences = compare_metadata(context, Base.metadata)
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert differences == []
    assert {"contacts", "contracts", "deliveries", "events", "conversions", "users"} <= tables
