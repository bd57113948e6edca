"""Metric triggers in a real engine: a breach survives kill -9 (one Triggered, and the Resolved
still comes), actions_on_resolve run with the resolved event, and the lifecycle events, ListFirings
and the command line carry the state and the value.

The engine runs with ``AUTOMATIONS_METRIC_MINIMUM_SECONDS=1`` so that ``range`` and
``firing_for`` can be seconds (Prefect's minimum is 300 s); the timing rules themselves are pinned
on the virtual clock (tests/unit/engine, tests/conformance/metric).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import automations
from automations.domain import metric_json, metric_queries
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

FAST = {"AUTOMATIONS_METRIC_MINIMUM_SECONDS": "1"}
JOB = {"prefect.resource.id": "job.1"}


@pytest.fixture(autouse=True)
def short_metrics_here_too() -> Iterator[None]:
    """The client checks automations before sending them: with the engine's minimum."""
    metric_json.minimum_seconds = 1.0
    yield
    metric_json.minimum_seconds = metric_queries.MIN_SECONDS


def failures(name: str, range_seconds: float, firing_for: float, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {
            "type": "metric",
            "match": {"prefect.resource.id": "job.*"},
            "metric": {
                "name": "failures",
                "events": ["job.failed"],
                "threshold": 1,
                "operator": ">",
                "range": range_seconds,
                "firing_for": firing_for,
            },
        },
        "actions": [],
        **more,
    }


def publish(client: automations.Client, count: int) -> float:
    now = time.time()
    client.publish(
        raise_on_rejected=True,
        events=[
            {
                "id": str(uuid.uuid4()),
                "event": "job.failed",
                "occurred": now,
                "resource": {"prefect.resource.id": "job.1"},
            }
            for _ in range(count)
        ],
    )
    return now


def states(client: automations.Client, automation_id: str) -> list[tuple[str, Any]]:
    listed = client.list_firings(automation_id=automation_id)
    return sorted((f["state"], f["triggering_value"]) for f in listed)


def test_a_breach_survives_kill_9_once_triggered_and_the_resolved_still_comes(
    tmp_path: Path,
) -> None:
    engine = EngineProcess(tmp_path, env=FAST).start()
    try:
        with automations.Client(engine.grpc_addr) as client:
            created = client.create_automation(failures("failing jobs", 20, 3))["id"]
            began = publish(client, 2)
        engine.kill9()  # mid-breach: acknowledged means committed
    finally:
        engine.stop()

    again = EngineProcess(tmp_path, env=FAST, database_url=engine.database_url).start()
    try:
        with automations.Client(again.grpc_addr) as client:
            (triggered,) = wait_until(
                lambda: client.list_firings(automation_id=created), what="the Triggered firing"
            )
            assert (triggered["state"], triggered["triggering_value"]) == ("Triggered", 2.0)
        again.kill9()  # while Triggered, the window still full
    finally:
        again.stop()

    third = EngineProcess(tmp_path, env=FAST, database_url=engine.database_url).start()
    try:
        with automations.Client(third.grpc_addr) as client:
            wait_until(
                lambda: len(client.list_firings(automation_id=created)) > 1,
                what="the Resolved firing",
            )
            # a second Triggered would have come at the restart, seconds before the Resolved
            assert states(client, created) == [("Resolved", 0.0), ("Triggered", 2.0)]
            resolved = next(
                f for f in client.list_firings(automation_id=created) if f["state"] == "Resolved"
            )
    finally:
        third.stop()
    fired = automations_time(resolved["triggered"])
    assert fired >= began + 20 + 3 - 1.5, "resolved after the samples left and firing_for held"


def automations_time(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def emit(name: str, **payload: str) -> dict[str, Any]:
    return {
        "type": "emit-event",
        "event": name,
        "resource": {"prefect.resource.id": "test.metric-actions"},
        "payload": payload,
    }


def test_actions_on_resolve_run_with_the_resolved_event_and_the_lifecycle_events_say_so(
    tmp_path: Path,
) -> None:
    automation = failures(
        "paging",
        3,
        2,
        actions=[emit("every.{{ firing.trigger_states | join }}")],
        actions_on_trigger=[emit("page.{{ event.event }}", value="{{ firing.triggering_value }}")],
        actions_on_resolve=[emit("close.{{ event.event }}", value="{{ firing.triggering_value }}")],
    )
    engine = EngineProcess(tmp_path, env=FAST).start()
    try:
        with automations.Client(engine.grpc_addr) as client:
            created = client.create_automation(automation)["id"]
            publish(client, 2)

            def closed() -> list[dict[str, Any]]:
                return client.list_events(names=["close.*"])

            (close,) = wait_until(closed, what="the actions_on_resolve event")
            assert close["event"] == "close.prefect.automation.resolved"
            assert close["payload"] == {"value": "0.0"}
            (page,) = client.list_events(names=["page.*"])
            assert (page["event"], page["payload"]) == (
                "page.prefect.automation.triggered",
                {"value": "2.0"},
            )
            assert [e["event"] for e in client.list_events(names=["every.*"])] == [
                "every.Triggered"
            ]  # plain actions run on Triggered only

            resource = f"prefect.automation.{created}"
            (resolved,) = client.list_events(names=["prefect.automation.resolved"])
            (triggered,) = client.list_events(names=["prefect.automation.triggered"])
            for state_event, value in ((triggered, 2.0), (resolved, 0.0)):
                assert state_event["resource"] == {
                    "prefect.resource.id": resource,
                    "prefect.resource.name": "paging",
                    "prefect.posture": "Metric",
                }
                assert state_event["payload"] == {
                    "triggering_labels": {},
                    "triggering_event": None,
                    "triggering_value": value,
                }
            actions = client.list_events(names=["prefect.automation.action.triggered"])
            assert sorted(a["payload"]["action_index"] for a in actions) == [0, 1, 2]
            assert {a["resource"]["prefect.trigger-type"] for a in actions} == {"metric"}
            close_action = next(a for a in actions if a["payload"]["action_index"] == 2)
            assert {
                "prefect.resource.id": f"prefect.event.{resolved['id']}",
                "prefect.resource.role": "automation-triggered-event",
            } in close_action["related"]

            simulated = client.simulate_outcome(
                automation,
                [
                    {"at": 0, "event": {"id": f"s{i}", "event": "job.failed", "resource": JOB}}
                    for i in range(2)
                ],
                until=20,
            )
            assert [(f["state"], f["triggering_value"]) for f in simulated["firings"]] == [
                ("Triggered", 2.0)
            ]
            assert [(f["state"], f["triggering_value"]) for f in simulated["resolutions"]] == [
                ("Resolved", 0.0)
            ]

        listed = subprocess.run(
            [
                sys.executable,
                "-m",
                "automations.cli.main",
                "firings",
                "list",
                "--server",
                engine.grpc_addr,
                "--automation",
                created,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        shown = json.loads(listed.stdout)
        assert sorted((f["state"], f["triggering_value"]) for f in shown) == [
            ("Resolved", 0.0),
            ("Triggered", 2.0),
        ]
    finally:
        engine.stop()
