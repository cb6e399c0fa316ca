"""Per-request access to the app's settings, database and enqueue function."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app
from sqlalchemy.orm import Session

from campaigns.config import Settings
from campaigns.db import Database


def settings() -> Settings:
    value: Settings = current_app.extensions["campaigns"]["settings"]
    return value


def database() -> Database:
    value: Database = current_app.extensions["campaigns"]["db"]
    return value


@contextmanager
def unit_of_work() -> Iterator[Session]:
    with database().unit_of_work() as session:
        yield session


def enqueue(batches: list[list[int]]) -> None:
    if batches:
        current_app.extensions["campaigns"]["enqueue"](batches)
