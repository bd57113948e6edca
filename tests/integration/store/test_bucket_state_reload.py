"""Bucket state written by the engine reloads through the store with everything a firing needs.

Persistence is lean (a reactive bucket stores no event, a proactive one stores its last event as
pre-encoded JSON, and the reload streams raw rows into the engine), so these check, on both
backends, that a restart still fires a proactive window with the complete triggering event.
"""

from __future__ import annotations

import orjson
import pytest

from automations.domain import events, prefect_json
from automations.engine.python_matcher import PythonMatcher
from automations.engine.trigger_engine import TriggerEngine
from automations.pipeline import backend as backend_
from automations.store import firings_repo, state_repo
from automations.store.database import Database

T0 = 1893456000.0
REACTIVE = {
    "type": "event",
    "expect": ["job.started"],
    "threshold": 2,
    "within": 600,
    "for_each": ["prefect.resource.id"],
}
PROACTIVE = {
    "type": "event",
    "posture": "Proactive",
    "after": ["job.started"],
    "expect": ["job.done"],
    "threshold": 1,
    "within": 60,
    "for_each": ["prefect.resource.id"],
}


def _backend(db: Database, clock: list[float]) -> backend_.EngineBackend:
    return backend_.EngineBackend(
        db,
        engine_factory=lambda: TriggerEngine(PythonMatcher()),
        clock=lambda: clock[0],
    )


def test_a_restart_fires_a_window_with_its_complete_triggering_event(db: Database) -> None:
    clock = [T0]
    first = _backend(db, clock)
    first.start()
    for aid, trigger in (("re", REACTIVE), ("pa", PROACTIVE)):
        first.changes.create(
            prefect_json.parse_automation(
                {"name": aid, "trigger": trigger, "actions": [{"type": "do-nothing"}]},
                automation_id=aid,
            )
        )
    started = events.Event(
        id="e1",
        event="job.started",
        occurred=T0 + 1.25,
        resource={"prefect.resource.id": "job.1", "owner": "ops"},
        related=({"prefect.resource.id": "flow.9", "prefect.resource.role": "flow"},),
        payload={"attempt": 3, "nested": {"k": [1, 2.5, "é"]}},
        received=T0 + 1.5,
    )
    first.commit_events([started], T0 + 2)

    with db.read() as conn:
        rows = {row.automation_id: row for row in state_repo.load_all(conn, kind="bucket")}
    assert "last_event" not in rows["re"].data  # a reactive firing never needs it
    assert rows["pa"].data["last_event"]["id"] == "e1"
    first.dispose()

    # restart after the window [1.25, 61.25) ended: it fires once, at the first advance
    clock[0] = T0 + 100
    second = _backend(db, clock)
    second.start()
    assert second.next_due() == pytest.approx(T0 + 61.25)
    second.advance(T0 + 100)
    with db.read() as conn:
        fired, _ = firings_repo.list_page(conn, automation_id="pa", page_size=10, page_token="")
        left = state_repo.load_all(conn, kind="bucket")
    assert len(fired) == 1
    assert fired[0].triggering_event == started
    assert [row.automation_id for row in left] == ["re"]
    second.dispose()


def test_iter_raw_streams_one_automation_undecoded(db: Database) -> None:
    with db.write() as conn:
        state_repo.upsert_many(
            conn,
            [
                ("a", "t", "bucket", '["k2"]', b'{"start":1.0,"end":2.0,"count":0}', 62.0),
                ("a", "t", "bucket", '["k1"]', {"start": 1.0}, None),
                ("b", "t", "bucket", '["k1"]', {"start": 3.0}, None),
            ],
        )
    with db.read() as conn:
        rows = list(state_repo.iter_raw(conn, "a"))
    assert [row[3] for row in rows] == ['["k1"]', '["k2"]']
    assert all(isinstance(row[4], bytes) for row in rows)
    assert orjson.loads(rows[1][4]) == {"start": 1.0, "end": 2.0, "count": 0}
    assert rows[1][5] == 62.0
