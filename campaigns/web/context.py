"""Per-request access to the app's settings, database and enqueue function."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app, request
from sqlalchemy.orm import Session

from campaigns.config import Settings
from campaigns.db import Database

# Blueprints whose GET requests write: the open pixel and tracked clicks record events, and
# API keys record their last use.
WRITING_GETS = {"public", "api"}


def settings() -> Settings:
    value: Settings = current_app.extensions["campaigns"]["settings"]
    return value


def database() -> Database:
    value: Database = current_app.extensions["campaigns"]["db"]
    return value


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """The request's unit of work; an admin page that only reads takes no write lock."""
    reads_only = request.method in ("GET", "HEAD") and request.blueprint not in WRITING_GETS
    with database().reading() if reads_only else database().unit_of_work() as session:
        yield session


def enqueue(batches: list[list[int]]) -> None:
    if batches:
        current_app.extensions["campaigns"]["enqueue"](batches)
