"""Retention: events, firings and finished invocations age out together; dead letters stay."""

from __future__ import annotations

import uuid
from pathlib import Path

from automations.domain import events, invocations, prefect_json
from automations.engine import trigger_engine
from automations.engine.rete import runtime
from automations.pipeline import backend as backend_
from automations.pipeline import queries
from automations.store import database, firings_repo, outbox_repo
from tests.factories import Clock


def test_old_firings_and_finished_invocations_are_purged_with_the_events(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    db = database.Database(f"sqlite:///{tmp_path / 'a.db'}")
    db.migrate()
    backend = backend_.EngineBackend(
        db,
        engine_factory=lambda: trigger_engine.TriggerEngine(runtime.ReteMatcher()),
        retention_seconds=3600,
        clock=clock,
    )
    backend.start()
    backend.changes.create(
        prefect_json.parse_automation(
            {
                "name": "a",
                "trigger": {"type": "event", "expect": ["x"], "threshold": 1, "within": 0},
                "actions": [{"type": "do-nothing"}, {"type": "acme.parked"}],
            },
            automation_id="a1",
            created=clock.now,
            updated=clock.now,
        )
    )
    event = events.Event(
        id=str(uuid.uuid4()),
        event="x",
        occurred=clock.now,
        resource={"prefect.resource.id": "r"},
        received=clock.now,
    )
    backend.commit_events([event], clock.now)
    with db.write() as conn:  # park the second invocation as a dead letter
        (parked,) = [i for i in outbox_repo.list_page(conn)[0] if i.action_type == "acme.parked"]
        outbox_repo.claim_due(conn, clock.now, 10)
        outbox_repo.finish_many(
            conn,
            [
                invocations.Finish(
                    parked.id, invocations.InvocationStatus.DEAD_LETTER, error="gave up"
                )
            ],
            now=clock.now,
        )

    with db.read() as conn:
        assert len(firings_repo.list_page(conn)[0]) == 1
        assert len(outbox_repo.list_page(conn)[0]) == 2

    clock.now += 7200 + backend_.PURGE_INTERVAL
    backend.advance(clock.now)

    with db.read() as conn:
        assert firings_repo.list_page(conn)[0] == []
        left = outbox_repo.list_page(conn)[0]
    assert [(i.action_type, i.status) for i in left] == [
        ("acme.parked", invocations.InvocationStatus.DEAD_LETTER)
    ]
    assert queries.Queries(db).list_events(page_size=10, page_token="")[0] == []
    db.dispose()
