"""One event can set off only a bounded cascade of automations firing on each other's events."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from automations.domain import events, prefect_json
from automations.engine import trigger_engine
from automations.engine.python_matcher import PythonMatcher
from automations.pipeline import backend as backend_
from automations.store import firings_repo, outbox_repo
from automations.store.database import Database


def watcher(automation_id: str, expect: list[str]) -> prefect_json.automations.Automation:
    now = time.time()
    return prefect_json.parse_automation(
        {
            "name": automation_id,
            "trigger": {"type": "event", "posture": "Reactive", "expect": expect, "threshold": 1},
            "actions": [{"type": "do-nothing"}],
        },
        automation_id=automation_id,
        created=now,
        updated=now,
    )


@pytest.fixture
def backend(tmp_path: Path) -> backend_.EngineBackend:
    database = Database(f"sqlite:///{tmp_path / 'cascade.db'}")
    database.migrate()
    made = backend_.EngineBackend(
        database,
        engine_factory=lambda: trigger_engine.TriggerEngine(PythonMatcher()),
        max_chain_depth=8,
        max_cascade_firings=20,
    )
    made.start()
    return made


def publish(backend: backend_.EngineBackend, name: str) -> None:
    now = time.time()
    event = events.Event(
        id=str(uuid.uuid4()),
        event=name,
        occurred=now,
        resource={"prefect.resource.id": "r.1"},
        received=now,
    )
    backend.commit_events([event], now)


def recorded(backend: backend_.EngineBackend) -> tuple[int, list[str]]:
    with backend.database.read() as conn:
        fired = firings_repo.list_page(conn, page_size=1000)[0]
        invocations = outbox_repo.list_page(conn, page_size=1000)[0]
    return len(fired), [i.last_error or "" for i in invocations if i.status == "failed"]


def test_automations_firing_on_each_others_events_stop_at_the_cascade_budget(
    backend: backend_.EngineBackend,
) -> None:
    backend.changes.create(watcher("a", ["prefect.automation.*"]))
    backend.changes.create(watcher("b", ["prefect.automation.*", "start"]))
    fired_before, failed_before = recorded(backend)  # the creations set off trees of their own
    publish(backend, "start")
    fired, failed = recorded(backend)
    new_failures = failed[len(failed_before) :]
    cut = [reason for reason in new_failures if reason.startswith("automation cascade cut")]
    # b fires on the client's event (not counted); then every firing of the tree on an
    # automation-made event is counted, and those past 20 are cut: no actions, no events
    assert cut and len(cut) == len(new_failures)
    assert fired - fired_before == 1 + 20 + len(cut)
    assert "max_cascade_firings" in cut[0]


def test_a_second_event_starts_a_tree_with_a_fresh_budget(
    backend: backend_.EngineBackend,
) -> None:
    backend.changes.create(watcher("a", ["prefect.automation.action.executed", "start"]))
    backend.changes.create(watcher("b", ["prefect.automation.action.executed"]))
    fired_before, _ = recorded(backend)
    for _ in range(30):  # each event: a fires, then a and b in turn on each other's executed
        publish(backend, "start")
    fired, failed = recorded(backend)
    # per event: a's firing, then one on each action.executed until the chain is 8 deep
    assert fired - fired_before == 30 * 9
    assert len(failed) == 30 and all(r.startswith("automation chain cut") for r in failed)


def test_an_automation_does_not_see_its_own_lifecycle_events(
    backend: backend_.EngineBackend,
) -> None:
    backend.changes.create(watcher("everything", ["*"]))
    fired_before, _ = recorded(backend)
    publish(backend, "start")
    fired, failed = recorded(backend)
    assert (fired - fired_before, failed) == (1, [])
