"""Trigger state lives in the database: an engine rebuilt from it after a crash carries on.

The engine that saw the events is dropped without any shutdown (all that is left of it is what it
committed), a fresh EngineBackend loads the same SQLite file, and a fake clock is moved past the
deadlines: a window whose deadline passed while the engine was down fires once, right after the
restart; a window still open fires at its own deadline; a half-counted reactive bucket keeps its
count. (``tests/integration/test_trigger_state_survives_crash.py`` does this once with a real
process and kill -9.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from automations.domain import events, firings, prefect_json
from automations.pipeline import backend as backend_
from automations.store import database, firings_repo
from tests.factories import Clock

T0 = 1_893_456_000.0
"""When the job starts (the engine's clock before the crash)."""


def proactive(within: int) -> dict[str, Any]:
    return {
        "type": "event",
        "posture": "Proactive",
        "after": ["job.started"],
        "expect": ["job.done"],
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": within,
    }


REACTIVE = {
    "type": "event",
    "posture": "Reactive",
    "expect": ["job.failed"],
    "for_each": ["prefect.resource.id"],
    "threshold": 2,
    "within": 300,
}


def event(event_id: str, name: str, at: float) -> events.Event:
    return events.Event(
        id=event_id, event=name, occurred=at, resource={"prefect.resource.id": "job-1"}, received=at
    )


def engine_on(db: database.Database, clock: Clock) -> backend_.EngineBackend:
    """An engine (the rete matcher, as served) loaded from what ``db`` holds."""
    backend = backend_.EngineBackend(db, engine_factory=backend_.rete_engine, clock=clock)
    backend.start()
    return backend


def fired(db: database.Database, automation_id: str) -> list[firings.Firing]:
    with db.read() as conn:
        return firings_repo.list_page(conn, automation_id=automation_id, page_size=100)[0]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[database.Database]:
    """The database of an engine that crashed at T0 + 1 with a job started and failed once.

    Automations: ``short`` (a 10 s window), ``long`` (a 20 s window), ``reactive`` (two
    failures); ``job.started`` at T0 opened both windows and one ``job.failed`` half-counted the
    reactive bucket.
    """
    the_db = database.Database(f"sqlite:///{tmp_path / 'automations.db'}")
    the_db.migrate()
    clock = Clock(T0)
    before = engine_on(the_db, clock)
    for automation_id, trigger in (
        ("short", proactive(10)),
        ("long", proactive(20)),
        ("reactive", REACTIVE),
    ):
        before.changes.create(
            prefect_json.parse_automation(
                {"name": automation_id, "trigger": trigger, "actions": [{"type": "do-nothing"}]},
                automation_id=automation_id,
                created=T0,
                updated=T0,
            )
        )
    before.commit_events([event("e1", "job.started", T0)], T0)
    before.commit_events([event("e2", "job.failed", T0 + 0.5)], T0 + 0.5)
    assert before.next_due() == pytest.approx(T0 + 10)
    del before  # the crash: nothing of that engine but its commits is left
    try:
        yield the_db
    finally:
        the_db.dispose()


def test_a_deadline_that_passed_while_down_fires_once_right_after_the_restart(
    db: database.Database,
) -> None:
    clock = Clock(T0 + 11)
    assert fired(db, "short") == []
    restarted = engine_on(db, clock)
    assert restarted.next_due() == pytest.approx(T0 + 10)  # overdue at once
    restarted.advance(clock.now)
    (firing,) = fired(db, "short")
    assert firing.triggered == pytest.approx(T0 + 11)
    assert dict(firing.triggering_labels) == {"prefect.resource.id": "job-1"}
    for later in (T0 + 12, T0 + 25, T0 + 100):
        clock.now = later
        restarted.advance(later)
    assert len(fired(db, "short")) == 1, "an overdue deadline fires once"


def test_a_window_still_open_at_the_restart_fires_at_its_own_deadline(
    db: database.Database,
) -> None:
    clock = Clock(T0 + 11)
    restarted = engine_on(db, clock)
    restarted.advance(clock.now)  # the overdue short window
    assert restarted.next_due() == pytest.approx(T0 + 20)
    clock.now = T0 + 19.9
    restarted.advance(clock.now)
    assert fired(db, "long") == []
    clock.now = T0 + 20
    restarted.advance(clock.now)
    (firing,) = fired(db, "long")
    assert firing.triggered == pytest.approx(T0 + 20)
    assert dict(firing.triggering_labels) == {"prefect.resource.id": "job-1"}


def test_a_half_counted_reactive_bucket_keeps_its_count(db: database.Database) -> None:
    clock = Clock(T0 + 11)
    restarted = engine_on(db, clock)
    assert fired(db, "reactive") == []
    restarted.commit_events([event("e3", "job.failed", clock.now)], clock.now)
    (firing,) = fired(db, "reactive")
    assert firing.triggering_event is not None and firing.triggering_event.id == "e3"
    assert dict(firing.triggering_labels) == {"prefect.resource.id": "job-1"}
