"""A failed transaction leaves nothing behind: the caller's transaction is the unit of work."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from automations.store import automations_repo, event_log, firings_repo, outbox_repo, state_repo
from automations.store.database import Database
from tests.factories import automation, event, firing, invocation


def write_everything(conn: sa.Connection, suffix: str) -> None:
    automations_repo.create(conn, automation(f"a-{suffix}"))
    event_log.append(conn, [event(f"e-{suffix}-{i}") for i in range(700)])
    state_repo.upsert_many(conn, [(f"a-{suffix}", "t", "bucket", "k", {"n": 1}, 5.0)])
    firings_repo.insert_many(conn, [firing(f"f-{suffix}", automation_id=f"a-{suffix}")])
    outbox_repo.add_many(
        conn,
        [
            invocation(
                0,
                automation_id=f"a-{suffix}",
                id=f"i-{suffix}",
                firing_id=f"f-{suffix}",
                idempotency_key=f"k-{suffix}",
            )
        ],
    )


def counts(db: Database) -> tuple[int, int, int, int, int]:
    with db.read() as conn:
        return (
            automations_repo.count(conn),
            event_log.count(conn),
            len(state_repo.load_all(conn)),
            len(firings_repo.list_page(conn)[0]),
            len(outbox_repo.list_page(conn)[0]),
        )


def test_an_exception_midway_rolls_back_every_table(db: Database) -> None:
    with db.write() as conn:
        write_everything(conn, "kept")
    before = counts(db)
    with pytest.raises(RuntimeError), db.write() as conn:
        write_everything(conn, "lost")
        raise RuntimeError("the engine failed after writing")
    assert counts(db) == before == (1, 700, 1, 1, 1)


def test_a_database_error_midway_rolls_back_what_came_before(db: Database) -> None:
    with pytest.raises(TypeError), db.write() as conn:
        event_log.append(conn, [event("first")])
        state_repo.upsert_many(conn, [("a", "t", "k", "x", {"bad": object()}, None)])
    with pytest.raises(sa.exc.IntegrityError), db.write() as conn:
        event_log.append(conn, [event("second")])
        conn.execute(sa.text("INSERT INTO automations (id) VALUES ('no-name')"))
    assert counts(db) == (0, 0, 0, 0, 0)
    with db.write() as conn:  # the pooled connections are healthy afterwards
        assert event_log.append(conn, [event("first"), event("second")]) == [True, True]


def test_readers_do_not_see_an_uncommitted_batch(db: Database) -> None:
    if db.reader is db.writer:
        pytest.skip("in-memory SQLite shares one connection")
    with db.write() as conn:
        event_log.append(conn, [event("pending")])
        assert counts(db)[1] == 0
    assert counts(db)[1] == 1
