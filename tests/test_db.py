"""SQLite writers take turns in the product's queue, and give the turn back however they end."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from campaigns.db import QueuedConnection, make_engine


def test_a_second_writer_waits_for_the_first_to_commit_then_goes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    order: list[str] = []
    first_in = threading.Event()

    def second() -> None:
        first_in.wait()
        with engine.begin() as conn:  # waits here for its turn
            order.append("second writes")
            conn.execute(text("INSERT INTO t VALUES (2)"))

    thread = threading.Thread(target=second)
    thread.start()
    with engine.begin() as conn:
        assert isinstance(conn.connection.dbapi_connection, QueuedConnection)
        conn.execute(text("INSERT INTO t VALUES (1)"))
        first_in.set()
        time.sleep(0.2)  # the second writer is waiting meanwhile, not failing
        order.append("first commits")
    thread.join(10)
    assert order == ["first commits", "second writes"]
    assert (tmp_path / "q.db-writers.lock").exists()
    engine.dispose()


def test_a_writer_that_rolls_back_gives_its_turn_back(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    with pytest.raises(RuntimeError), engine.begin():
        raise RuntimeError("the transaction fails")
    done = threading.Event()

    def writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT 1"))
        done.set()

    threading.Thread(target=writer).start()
    assert done.wait(5), "the turn was never given back"
    engine.dispose()
