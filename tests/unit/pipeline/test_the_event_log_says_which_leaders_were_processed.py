"""The single node writes no ``seen`` record per commit: the event log says what was processed.

An engine started on a database (after a restart, say) remembers no processed ids; a follower
whose leader it does not remember is taken up at once when the log holds that leader, received
within the seen window, under another name than ``prefect.log.write``, and not itself held.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from automations.domain import events
from automations.pipeline import backend as backend_
from automations.store import database, tables
from tests.factories import Clock

T0 = 1_893_456_000.0


def event(event_id: str, at: float, *, name: str = "x", follows: str | None = None) -> events.Event:
    return events.Event(
        id=event_id,
        event=name,
        occurred=at,
        resource={"prefect.resource.id": "r"},
        follows=follows,
        received=at,
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[database.Database]:
    the_db = database.Database(f"sqlite:///{tmp_path / 'automations.db'}")
    the_db.migrate()
    try:
        yield the_db
    finally:
        the_db.dispose()


def restarted(db: database.Database, clock: Clock) -> backend_.EngineBackend:
    backend = backend_.EngineBackend(db, engine_factory=backend_.rete_engine, clock=clock)
    backend.start()
    return backend


def held(backend: backend_.EngineBackend) -> set[str]:
    return set(backend.cascade.engine.ordering.held)


def test_a_follower_of_a_leader_processed_before_a_restart_is_taken_up_at_once(
    db: database.Database,
) -> None:
    clock = Clock(T0)
    restarted(db, clock).commit_events([event("lead", T0)], T0)
    clock.now = T0 + 60
    after = restarted(db, clock)
    after.commit_events([event("f", T0 + 60, follows="lead")], T0 + 60)
    assert held(after) == set()
    assert after.cascade.engine.ordering.has_been_seen("f", T0 + 61)


def test_no_seen_record_is_written_per_commit(db: database.Database) -> None:
    backend = restarted(db, Clock(T0))
    backend.commit_events([event("a", T0), event("b", T0)], T0)
    with db.read() as conn:
        kinds = conn.execute(sa.select(tables.engine_state.c.kind)).scalars().all()
    assert "seen" not in kinds


def test_a_follower_of_a_leader_still_held_stays_held_after_a_restart(
    db: database.Database,
) -> None:
    clock = Clock(T0)
    restarted(db, clock).commit_events([event("lead", T0, follows="never-came")], T0)
    clock.now = T0 + 60
    after = restarted(db, clock)
    assert held(after) == {"lead"}
    after.commit_events([event("f", T0 + 60, follows="lead")], T0 + 60)
    assert held(after) == {"lead", "f"}


def test_a_follower_of_a_log_write_is_held_as_before(db: database.Database) -> None:
    clock = Clock(T0)
    restarted(db, clock).commit_events([event("log", T0, name="prefect.log.write")], T0)
    after = restarted(db, clock)
    after.commit_events([event("f", T0 + 1, follows="log")], T0 + 1)
    assert held(after) == {"f"}


def test_a_leader_received_longer_ago_than_the_seen_window_is_not_known(
    db: database.Database,
) -> None:
    clock = Clock(T0)
    restarted(db, clock).commit_events([event("lead", T0)], T0)
    clock.now = T0 + 1801  # Prefect's 30 minutes, and a second
    after = restarted(db, clock)
    after.commit_events([event("f", clock.now, follows="lead")], clock.now)
    assert held(after) == {"f"}


def test_a_follower_of_an_unknown_leader_is_held(db: database.Database) -> None:
    backend = restarted(db, Clock(T0))
    backend.commit_events([event("f", T0, follows="nobody")], T0)
    assert held(backend) == {"f"}


def test_a_leader_that_occurred_before_the_retention_is_kept_while_it_counts(
    db: database.Database,
) -> None:
    clock = Clock(T0)
    first = restarted(db, clock)
    long_ago = T0 - 8 * 86400  # a late client's event: older than the 7-day retention
    first.commit_events(
        [
            events.Event(
                id="lead",
                event="x",
                occurred=long_ago,
                resource={"prefect.resource.id": "r"},
                received=T0,
            )
        ],
        T0,
    )
    first.advance(T0 + 61)  # the retention purge: it keeps what was received within 30 min
    after = restarted(db, Clock(T0 + 120))
    after.commit_events([event("f", T0 + 120, follows="lead")], T0 + 120)
    assert held(after) == set()
