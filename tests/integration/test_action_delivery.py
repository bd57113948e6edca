"""Actions against real processes: the engine, the webhook executor and a local HTTP receiver.

What a user relies on: a firing's webhook reaches the receiver once (also across kill -9 of the
engine, an executor that is down for a while, and a slow receiver), final errors are not retried,
retryable ones end dead-lettered and can be redriven, and the automation's lifecycle events say
what happened.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from automations.v1 import (
    automation_service_pb2,
)
from tests.integration.engine_client import Client, State, states, wait_for
from tests.integration.engine_process import EngineProcess, free_port
from tests.integration.executors.executor_process import ExecutorProcess, Receiver, Reply

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FAST_RETRIES = {
    "AUTOMATIONS_ACTION_RETRY_BASE_SECONDS": "0.2",
    "AUTOMATIONS_ACTION_RETRY_MAX_SECONDS": "0.5",
}


def webhook_automation(url: str, *, name: str = "hook", event: str = "job.done") -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {
            "type": "event",
            "posture": "Reactive",
            "expect": [event],
            "threshold": 1,
            "within": 0,
        },
        "actions": [
            {
                "type": "call-webhook",
                "url": url,
                "payload": '{"event": "{{ event.id }}", "automation": "{{ automation.name }}"}',
            }
        ],
    }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


# ------------------------------------------------------------------------------------- tests


def test_a_webhook_fires_once_with_its_rendered_body_and_lifecycle_events(
    tmp_path: Path, receiver: Receiver
) -> None:
    engine = EngineProcess(tmp_path, bundled_executors=True).start()
    client = Client(engine)
    try:
        automation_id = client.create(webhook_automation(receiver.url + "/hook"))
        (event_id,) = client.publish("job.done", "job.1")
        wait_for(lambda: receiver.count() == 1, what="the webhook")
        (request,) = receiver.requests
        assert request.json() == {"event": event_id, "automation": "hook"}
        (invocation,) = wait_for(
            lambda: [
                i for i in client.invocations(automation_id) if i.state == State.STATE_SUCCEEDED
            ],
            what="a succeeded invocation",
        )
        assert request.headers["idempotency-key"] == invocation.uid
        assert invocation.attempts == 1
        assert invocation.result.fields["status_code"].number_value == 200

        (triggered,) = client.events_named("prefect.automation.triggered")
        assert triggered["resource"]["prefect.resource.id"] == f"prefect.automation.{automation_id}"
        assert triggered["payload"]["triggering_event"]["id"] == event_id
        (action_triggered,) = client.events_named("prefect.automation.action.triggered")
        assert action_triggered["follows"] == event_id
        assert action_triggered["payload"]["invocation"] == invocation.uid
        (executed,) = wait_for(
            lambda: client.events_named("prefect.automation.action.executed"),
            what="action.executed",
        )
        assert executed["follows"] == action_triggered["id"]
        assert executed["payload"]["status_code"] == 200
        assert executed["payload"]["action_type"] == "call-webhook"
        assert client.events_named("prefect.automation.created")
    finally:
        client.close()
        engine.stop()


def test_every_acknowledged_firing_reaches_the_receiver_exactly_once_across_kill_9(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.reply = Reply(delay=0.05)  # keep calls in flight when the engine dies
    executor = ExecutorProcess("webhook", tmp_path).start()
    route = ("--executor", f"call-webhook={executor.addr}")
    engine = EngineProcess(tmp_path, extra_args=route).start()
    client = Client(engine)
    n = 150
    try:
        automation_id = client.create(webhook_automation(receiver.url + "/hook"))
        client.publish("job.done", "job.1", n)  # every event acknowledged = its firing committed
        wait_for(lambda: receiver.count() >= 10, what="the first webhooks")
        engine.kill9()
        client.close()
        engine.start()
        client = Client(engine)
        wait_for(
            lambda: states(client.invocations(automation_id))["STATE_SUCCEEDED"] == n,
            timeout=90,
            what=f"{n} succeeded invocations",
        )
        keys = collections.Counter(r.headers["idempotency-key"] for r in receiver.requests)
        assert len(keys) == n
        assert max(keys.values()) == 1, keys.most_common(3)
        assert {i.uid for i in client.invocations(automation_id)} == set(keys)
    finally:
        client.close()
        engine.stop()
        executor.stop()


def test_an_executor_that_is_down_is_retried_until_it_is_back(
    tmp_path: Path, receiver: Receiver
) -> None:
    address = f"127.0.0.1:{free_port()}"
    engine = EngineProcess(
        tmp_path,
        extra_args=("--executor", f"call-webhook={address}"),
        # keeps retrying while the executor process starts, however slow the machine
        env={**FAST_RETRIES, "AUTOMATIONS_ACTION_MAX_ATTEMPTS": "100"},
    ).start()
    client = Client(engine)
    executor = ExecutorProcess("webhook", tmp_path)
    executor.addr = address
    try:
        automation_id = client.create(webhook_automation(receiver.url + "/hook"))
        client.publish("job.done", "job.1")
        (waiting,) = wait_for(
            lambda: [i for i in client.invocations(automation_id) if i.attempts >= 2],
            what="a retried invocation",
        )
        assert waiting.state in (State.STATE_PENDING, State.STATE_RUNNING)
        assert waiting.last_error.startswith("UNAVAILABLE")
        executor.start()
        wait_for(
            lambda: states(client.invocations(automation_id))["STATE_SUCCEEDED"] == 1,
            what="success once the executor is up",
        )
        assert receiver.count() == 1
    finally:
        client.close()
        engine.stop()
        executor.stop()


def test_a_final_failure_is_not_retried_and_publishes_action_failed(
    tmp_path: Path, receiver: Receiver
) -> None:
    engine = EngineProcess(tmp_path, bundled_executors=True, env=FAST_RETRIES).start()
    client = Client(engine)
    try:
        automation_id = client.create(
            webhook_automation("http://169.254.169.254/latest/meta-data/")
        )
        client.publish("job.done", "job.1")
        (failed,) = wait_for(
            lambda: [i for i in client.invocations(automation_id) if i.state == State.STATE_FAILED],
            what="a failed invocation",
        )
        time.sleep(1.0)  # long enough for retries, were there any
        (failed,) = client.invocations(automation_id)
        assert failed.attempts == 1
        assert failed.last_error.startswith("PERMISSION_DENIED")
        (event,) = wait_for(
            lambda: client.events_named("prefect.automation.action.failed"), what="action.failed"
        )
        assert event["payload"]["reason"]
        assert event["payload"]["status_code"] == "PERMISSION_DENIED"
    finally:
        client.close()
        engine.stop()


def test_a_slow_receiver_runs_past_the_deadline_and_the_retry_does_not_repeat_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.reply = Reply(delay=1.5)
    executor = ExecutorProcess("webhook", tmp_path, args=("--timeout", "10")).start()
    engine = EngineProcess(
        tmp_path,
        extra_args=("--executor", f"call-webhook={executor.addr}"),
        env={
            **FAST_RETRIES,
            "AUTOMATIONS_ACTION_TIMEOUT_SECONDS": "0.5",
            "AUTOMATIONS_ACTION_MAX_ATTEMPTS": "30",  # headroom on a loaded machine
        },
    ).start()
    client = Client(engine)
    try:
        automation_id = client.create(webhook_automation(receiver.url + "/hook"))
        client.publish("job.done", "job.1")
        (done,) = wait_for(
            lambda: [
                i for i in client.invocations(automation_id) if i.state == State.STATE_SUCCEEDED
            ],
            what="success after the deadline",
        )
        assert done.attempts >= 2  # the first attempt hit the 0.5 s deadline
        assert receiver.count() == 1  # the executor finished the first call; retries reused it
    finally:
        client.close()
        engine.stop()
        executor.stop()


def test_retries_end_dead_lettered_and_a_redrive_delivers(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.reply = Reply(status=503)
    engine = EngineProcess(
        tmp_path,
        bundled_executors=True,
        env={**FAST_RETRIES, "AUTOMATIONS_ACTION_MAX_ATTEMPTS": "3"},
    ).start()
    client = Client(engine)
    try:
        automation_id = client.create(webhook_automation(receiver.url + "/hook"))
        client.publish("job.done", "job.1")
        (parked,) = wait_for(
            lambda: [
                i for i in client.invocations(automation_id) if i.state == State.STATE_DEAD_LETTERED
            ],
            what="a dead-lettered invocation",
        )
        assert parked.attempts == 3
        assert receiver.count() == 3
        (failed,) = wait_for(
            lambda: client.events_named("prefect.automation.action.failed"), what="action.failed"
        )
        assert failed["payload"]["reason"].startswith("Gave up after 3 attempts")

        receiver.reply = Reply(status=200)
        redriven = client.automations.RedriveAction(
            automation_service_pb2.RedriveActionRequest(name=parked.name)
        )
        assert redriven.state == State.STATE_PENDING
        wait_for(
            lambda: states(client.invocations(automation_id))["STATE_SUCCEEDED"] == 1,
            what="success after the redrive",
        )
        assert receiver.count() == 4
        with pytest.raises(grpc.RpcError) as refused:
            client.automations.RedriveAction(
                automation_service_pb2.RedriveActionRequest(name=parked.name)
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        client.close()
        engine.stop()


def test_a_malformed_template_is_refused_at_create(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    client = Client(engine)
    try:
        data = webhook_automation("http://127.0.0.1:9/hook")
        data["actions"][0]["payload"] = "line one\n{{ event.id "
        with pytest.raises(grpc.RpcError) as refused:
            client.create(data)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "actions[0].payload" in str(refused.value.details())
        assert "line 2" in str(refused.value.details())
    finally:
        client.close()
        engine.stop()


def test_an_automation_feeding_on_failures_is_cut_by_the_loop_guard(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path, env={"AUTOMATIONS_MAX_CHAIN_DEPTH": "3"}).start()
    client = Client(engine)
    try:
        unserved = [{"type": "acme.unserved"}]
        starter = client.create(
            {
                "name": "starter",
                "trigger": {"type": "event", "expect": ["job.done"], "threshold": 1, "within": 0},
                "actions": unserved,
            }
        )
        watcher = client.create(
            {
                "name": "on any failure",
                "trigger": {
                    "type": "event",
                    "expect": ["prefect.automation.action.failed"],
                    "threshold": 1,
                    "within": 0,
                },
                "actions": unserved,
            }
        )
        client.publish("job.done", "job.1")
        cut = wait_for(
            lambda: [i for i in client.invocations(watcher) if "chain cut" in i.last_error],
            what="the loop guard",
        )
        time.sleep(1.0)
        watcher_invocations = client.invocations(watcher)
        # starter fails (depth 1) -> watcher fails (2) -> watcher fails (3) -> cut
        assert len(watcher_invocations) == 3
        assert len(cut) == 1
        (first,) = client.invocations(starter)
        assert first.last_error == "No executor serves action type 'acme.unserved'"
    finally:
        client.close()
        engine.stop()


def test_pause_automation_disables_the_selected_automation(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    client = Client(engine)
    try:
        target = client.create(
            {
                "name": "target",
                "trigger": {"type": "event", "expect": ["x"], "threshold": 1, "within": 0},
                "actions": [{"type": "do-nothing"}],
            }
        )
        client.create(
            {
                "name": "pauser",
                "trigger": {"type": "event", "expect": ["stop"], "threshold": 1, "within": 0},
                "actions": [
                    {"type": "pause-automation", "source": "selected", "automation_id": target}
                ],
            }
        )
        client.publish("stop", "ops.1")

        def disabled() -> bool:
            got = client.automations.GetAutomation(
                automation_service_pb2.GetAutomationRequest(name=f"automations/{target}")
            )
            return not got.enabled

        wait_for(disabled, what="the target disabled")
        wait_for(
            lambda: [
                e
                for e in client.events_named("prefect.automation.updated")
                if e["resource"]["prefect.resource.id"] == f"prefect.automation.{target}"
            ],
            what="automation.updated for the target",
        )
    finally:
        client.close()
        engine.stop()
