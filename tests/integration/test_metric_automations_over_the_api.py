"""Metric automations and Resolved firings through a real engine's API.

Prefect's metric trigger JSON (alone, and as a child of compound and sequence triggers) comes back
from create, get, list and update as it went in; the server itself refuses a ``range`` or
``firing_for`` under Prefect's 300 s with Prefect's message; a proactive trigger's key resolves
when its expected events resume, running ``actions_on_resolve``, whose templates link to the
configured Prefect UI.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import automations
from automations.domain import prefect_json
from automations.v1 import automation_service_pb2, automation_service_pb2_grpc
from automations.wire import automations as wire_automations
from tests import factories
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

PREFECT_SAMPLE: dict[str, Any] = factories.prefect_metric_trigger()
OWN: dict[str, Any] = {  # as Prefect's client serializes a trigger: every field
    "type": "metric",
    "posture": "Metric",
    "match": {},
    "match_related": {},
    "metric": {
        "name": "order latency",
        "threshold": 3600,
        "operator": ">",
        "range": 86400,
        "firing_for": 600,
        "aggregation": "p99",
        "value": {
            "between": {"from": ["order.placed"], "to": ["order.shipped"], "key": "order.id"}
        },
        "for_each": ["related:customer:prefect.resource.id"],
    },
}
TRIGGERS: dict[str, dict[str, Any]] = {
    "prefect": PREFECT_SAMPLE,
    "untyped": {k: v for k, v in PREFECT_SAMPLE.items() if k != "type"},
    "own": OWN,
    "compound": {"type": "compound", "require": "all", "triggers": [PREFECT_SAMPLE, OWN]},
    "sequence": {"type": "sequence", "triggers": [{"expect": ["deploy.started"]}, OWN]},
}
UI = "http://prefect.example:4200"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """An engine with Prefect's 300 s minimum (the default) and a Prefect UI URL."""
    workdir = tmp_path_factory.mktemp("metric-api")
    process = EngineProcess(workdir, env={"AUTOMATIONS_PREFECT_UI_URL": UI}).start()
    try:
        yield process
    finally:
        process.stop()


def automation(name: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": trigger,
        "actions": [],
        "actions_on_trigger": [{"type": "do-nothing"}],
        "actions_on_resolve": [{"type": "do-nothing"}],
    }


def test_metric_triggers_round_trip_through_create_get_list_and_update(
    engine: EngineProcess,
) -> None:
    with automations.Client(engine.grpc_addr) as client:
        created = {
            name: client.create_automation(automation(name, trigger))
            for name, trigger in TRIGGERS.items()
        }
        listed = {a["name"]: a for a in client.list_automations()}
        for name, trigger in TRIGGERS.items():
            fetched = client.get_automation(created[name]["id"])
            assert fetched == created[name] == listed[name]
            parsed_back = prefect_json.parse_automation(fetched).trigger
            assert parsed_back == prefect_json.parse_automation(automation(name, trigger)).trigger
        # Prefect's own JSON prints back exactly, a posture-only one as a typed metric trigger
        assert factories.without_ids(created["prefect"]["trigger"]) == PREFECT_SAMPLE
        assert factories.without_ids(created["untyped"]["trigger"]) == PREFECT_SAMPLE
        assert factories.without_ids(created["own"]["trigger"]) == OWN
        children = created["compound"]["trigger"]["triggers"]
        assert [factories.without_ids(c) for c in children] == [PREFECT_SAMPLE, OWN]
        assert factories.without_ids(created["sequence"]["trigger"]["triggers"][1]) == OWN

        lower = {**PREFECT_SAMPLE, "metric": {**PREFECT_SAMPLE["metric"], "threshold": 0.5}}
        updated = client.update_automation(created["prefect"]["id"], automation("p", lower))
        assert factories.without_ids(updated["trigger"]) == lower
        assert client.get_automation(created["prefect"]["id"]) == updated


def refusal(engine: EngineProcess, trigger: dict[str, Any], path: tuple[str, ...]) -> Any:
    """Sends a metric trigger whose field at ``path`` is 60 s straight to the server (the
    client would refuse it first) and returns the error."""
    message = wire_automations.automation_proto_from_prefect_json(automation("short", trigger))
    node: Any = message.trigger
    for step in path:
        node = node.triggers[int(step)] if step.isdigit() else getattr(node, step)
    node.seconds = 60
    stub = automation_service_pb2_grpc.AutomationServiceStub(engine.channel())
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateAutomation(
            automation_service_pb2.CreateAutomationRequest(automation=message), timeout=10
        )
    return raised.value


def test_the_server_refuses_under_300_seconds_with_prefects_message(
    engine: EngineProcess,
) -> None:
    for trigger, path, field in (
        (PREFECT_SAMPLE, ("metric", "metric", "range"), "trigger.metric.range"),
        (PREFECT_SAMPLE, ("metric", "metric", "firing_for"), "trigger.metric.firing_for"),
        (
            TRIGGERS["compound"],
            ("compound", "0", "metric", "metric", "firing_for"),
            "trigger.triggers[0].metric.firing_for",
        ),
    ):
        error = refusal(engine, trigger, path)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.details() == f"{field}: The minimum range is 300 seconds (5 minutes)"

    short = {**PREFECT_SAMPLE, "metric": {**PREFECT_SAMPLE["metric"], "firing_for": 299.5}}
    with automations.Client(engine.grpc_addr) as client:
        with pytest.raises(automations.client.CallError) as raised:
            client.create_automation(automation("short", short))
        assert raised.value.field == "trigger.metric.firing_for"
        assert "The minimum range is 300 seconds (5 minutes)" in raised.value.message
        names = {a["name"] for a in client.list_automations()}
    assert "short" not in names


def test_a_proactive_key_resolves_when_its_events_resume_and_runs_actions_on_resolve(
    engine: EngineProcess,
) -> None:
    def emit(name: str, **payload: str) -> dict[str, Any]:
        return {
            "type": "emit-event",
            "event": name,
            "resource": {"prefect.resource.id": "test.proactive-resolve"},
            "payload": payload,
        }

    stuck = {
        "name": "stuck jobs",
        "trigger": {
            "posture": "Proactive",
            "after": ["job.started"],
            "expect": ["job.finished"],
            "match": {"prefect.resource.id": "job.*"},
            "for_each": ["prefect.resource.id"],
            "within": 10,  # Prefect's minimum for a proactive trigger
        },
        "actions": [emit("stuck.{{ firing.trigger_states | join }}")],
        "actions_on_resolve": [
            emit(
                "unstuck.{{ event.event }}",
                job="{{ firing.triggering_labels['prefect.resource.id'] }}",
                link="{{ automation | ui_url }}",
            )
        ],
    }
    job = f"job.{uuid.uuid4().hex[:8]}"

    def send(name: str) -> str:
        event_id = str(uuid.uuid4())
        client.publish(
            raise_on_rejected=True,
            events=[
                {
                    "id": event_id,
                    "event": name,
                    "occurred": time.time(),
                    "resource": {"prefect.resource.id": job},
                }
            ],
        )
        return event_id

    with automations.Client(engine.grpc_addr) as client:
        created = client.create_automation(stuck)["id"]
        send("job.started")
        (triggered,) = wait_until(
            lambda: client.list_firings(automation_id=created), what="the proactive firing"
        )
        assert triggered["state"] == "Triggered"
        finished = send("job.finished")
        wait_until(
            lambda: client.list_events(names=["unstuck.*"]), what="the actions_on_resolve event"
        )
        send("job.finished")  # a second expected event resolves nothing more
        time.sleep(0.5)

        firings = sorted(client.list_firings(automation_id=created), key=lambda f: f["state"])
        assert [f["state"] for f in firings] == ["Resolved", "Triggered"]
        resolved = firings[0]
        assert resolved["triggering_labels"] == {"prefect.resource.id": job}
        assert resolved["triggering_event"]["id"] == finished
        (unstuck,) = client.list_events(names=["unstuck.*"])
        assert unstuck["event"] == "unstuck.prefect.automation.resolved"
        assert unstuck["payload"] == {"job": job, "link": f"{UI}/automations/automation/{created}"}
        assert [e["event"] for e in client.list_events(names=["stuck.*"])] == ["stuck.Triggered"]
        (resolved_event,) = client.list_events(
            names=["prefect.automation.resolved"],
            resource_ids=[f"prefect.automation.{created}"],
        )
        assert resolved_event["payload"]["triggering_labels"] == {"prefect.resource.id": job}
        assert resolved_event["payload"]["triggering_event"]["id"] == finished
        assert resolved_event["resource"]["prefect.posture"] == "Proactive"

    listed = subprocess.run(
        [sys.executable, "-m", "automations.cli.main", "firings", "list"]
        + ["--server", engine.grpc_addr, "--automation", created],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    assert [line.endswith("  Resolved") for line in sorted(lines)] == [False, True]
