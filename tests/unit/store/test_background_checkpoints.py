"""SQLite's WAL is copied back into the database file by a thread of its own, not by commits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from automations.store import checkpointer, event_log
from automations.store.database import Database
from tests.factories import event
from tests.waiting import wait_until


def _fill(db: Database, batches: int, start: int = 0) -> None:
    for b in range(batches):
        with db.write() as conn:
            event_log.append(
                conn,
                [event(f"e{start}-{b}-{i}", payload={"pad": "x" * 400}) for i in range(200)],
            )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    # the commits' own autocheckpoint is set far away: only the thread can copy the WAL back
    database = Database(f"sqlite:///{tmp_path}/db.sqlite", sqlite_wal_autocheckpoint=1_000_000)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def probe(tmp_path: Path) -> checkpointer.WalCheckpointer:
    """Reads the WAL's pending pages (never started)."""
    return checkpointer.WalCheckpointer(str(tmp_path / "db.sqlite"))


def test_the_wal_is_checkpointed_once_enough_pages_wait(
    db: Database, probe: checkpointer.WalCheckpointer
) -> None:
    _fill(db, 10)
    pending = probe.pending_frames()
    assert pending is not None and pending > 256  # nothing copied back yet
    db.start_background_checkpoints(256)
    wait_until(lambda: (probe.pending_frames() or 0) < 256, what="the thread's checkpoint")
    # the copied WAL is reused from its start by the next commit, and nothing was lost
    _fill(db, 1, start=1)
    with db.read() as conn:
        assert event_log.count(conn) == 2200


def test_a_trickle_of_small_commits_is_not_checkpointed_one_by_one(
    db: Database, probe: checkpointer.WalCheckpointer
) -> None:
    db.start_background_checkpoints(256)
    for i in range(5):
        with db.write() as conn:
            event_log.append(conn, [event(f"t{i}")])
        time.sleep(0.05)  # time for a checkpoint that should not happen
    pending = probe.pending_frames()
    assert pending is not None and 0 < pending < 256


def test_without_background_checkpoints_no_thread_copies_the_wal(
    db: Database, probe: checkpointer.WalCheckpointer
) -> None:
    db.start_background_checkpoints(0)
    _fill(db, 10)
    time.sleep(0.3)  # time for a checkpoint that should not happen
    assert (probe.pending_frames() or 0) > 256
