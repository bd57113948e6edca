"""Actions against real processes: the engine, the webhook executor and a local HTTP receiver.

What a user relies on: a firing's webhook reaches the receiver once (also across kill -9 of the
engine, an executor that is down for a while, and a slow receiver), final errors are not retried,
retryable ones end dead-lettered and can be redriven, and the automation's lifecycle events say
what happened. The tests drive the engine through ``automations.Client``, as a user would.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

import automations
from tests import waiting
from tests.integration.engine_process import EngineProcess, free_port
from tests.integration.executors.executor_process import ExecutorProcess, Receiver, Reply

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

T = TypeVar("T")
WAIT = 60.0
"""The bound of every wait: far beyond what any step needs on an idle machine."""
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


def connect(engine: EngineProcess) -> automations.Client:
    return automations.Client(engine.grpc_addr)


def create(client: automations.Client, data: dict[str, Any]) -> str:
    return str(client.create_automation(data)["id"])


def publish(client: automations.Client, name: str, resource_id: str, n: int = 1) -> list[str]:
    """Publishes ``n`` new events; returns their ids once every one is accepted."""
    events = [
        {"id": str(uuid.uuid4()), "event": name, "resource": {"prefect.resource.id": resource_id}}
        for _ in range(n)
    ]
    results = client.publish(events, raise_on_rejected=True)
    assert {r.status for r in results} == {"accepted"}
    return [e["id"] for e in events]


def wait_for(check: Callable[[], T], what: str, timeout: float = WAIT) -> T:
    return waiting.wait_until(check, timeout=timeout, interval=0.1, what=what)


def named(client: automations.Client, event: str) -> list[dict[str, Any]]:
    return client.list_events(names=[event])


def in_status(client: automations.Client, automation_id: str, status: str) -> list[dict[str, Any]]:
    return [i for i in client.list_invocations(automation_id) if i["status"] == status]


def succeeded(client: automations.Client, automation_id: str) -> int:
    return len(in_status(client, automation_id, "succeeded"))


def settled(invocations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The invocations once none is pending or running any more (else [])."""
    busy = [i for i in invocations if i["status"] in ("pending", "running")]
    return invocations if invocations and not busy else []


# ------------------------------------------------------------------------------------- tests


def test_a_webhook_fires_once_with_its_rendered_body_and_lifecycle_events(
    tmp_path: Path, receiver: Receiver
) -> None:
    engine = EngineProcess(tmp_path, bundled_executors=True).start()
    client = connect(engine)
    try:
        automation_id = create(client, webhook_automation(receiver.url + "/hook"))
        (event_id,) = publish(client, "job.done", "job.1")
        wait_for(lambda: receiver.count() == 1, what="the webhook")
        (request,) = receiver.requests
        assert request.json() == {"event": event_id, "automation": "hook"}
        (invocation,) = wait_for(
            lambda: in_status(client, automation_id, "succeeded"), what="a succeeded invocation"
        )
        assert request.headers["idempotency-key"] == invocation["id"]
        assert invocation["attempts"] == 1
        assert invocation["result"]["status_code"] == 200
        assert client.get_invocation(invocation["id"]) == invocation

        (triggered,) = named(client, "prefect.automation.triggered")
        assert triggered["resource"]["prefect.resource.id"] == f"prefect.automation.{automation_id}"
        assert triggered["payload"]["triggering_event"]["id"] == event_id
        (action_triggered,) = named(client, "prefect.automation.action.triggered")
        assert action_triggered["follows"] == event_id
        assert action_triggered["payload"]["invocation"] == invocation["id"]
        (executed,) = wait_for(
            lambda: named(client, "prefect.automation.action.executed"),
            what="action.executed",
        )
        assert executed["follows"] == action_triggered["id"]
        assert executed["payload"]["status_code"] == 200
        assert executed["payload"]["action_type"] == "call-webhook"
        assert named(client, "prefect.automation.created")
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
    client = connect(engine)
    n = 150
    try:
        automation_id = create(client, webhook_automation(receiver.url + "/hook"))
        publish(client, "job.done", "job.1", n)  # every event acknowledged = its firing committed
        wait_for(lambda: receiver.count() >= 10, what="the first webhooks")
        engine.kill9()
        client.close()
        engine.start()
        client = connect(engine)
        wait_for(
            lambda: succeeded(client, automation_id) == n,
            timeout=120,
            what=f"{n} succeeded invocations",
        )
        keys = collections.Counter(r.headers["idempotency-key"] for r in receiver.requests)
        assert len(keys) == n
        assert max(keys.values()) == 1, keys.most_common(3)
        assert {i["id"] for i in client.list_invocations(automation_id)} == set(keys)
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
    client = connect(engine)
    executor = ExecutorProcess("webhook", tmp_path)
    executor.addr = address
    try:
        automation_id = create(client, webhook_automation(receiver.url + "/hook"))
        publish(client, "job.done", "job.1")
        (retried,) = wait_for(
            lambda: [i for i in client.list_invocations(automation_id) if i["attempts"] >= 2],
            what="a retried invocation",
        )
        assert retried["status"] in ("pending", "running")
        assert retried["last_error"].startswith("UNAVAILABLE")
        executor.start()
        wait_for(
            lambda: succeeded(client, automation_id) == 1, what="success once the executor is up"
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
    client = connect(engine)
    try:
        automation_id = create(
            client, webhook_automation("http://169.254.169.254/latest/meta-data/")
        )
        publish(client, "job.done", "job.1")
        # FAILED is final, nothing takes an invocation out of it but a redrive. Had the error
        # been retried, the invocation would have gone back to pending instead, and with these
        # fast retries ended dead-lettered after several attempts, never failed after one.
        (failed,) = wait_for(
            lambda: in_status(client, automation_id, "failed"), what="a failed invocation"
        )
        assert failed["attempts"] == 1
        assert failed["last_error"].startswith("PERMISSION_DENIED")
        assert client.list_invocations(automation_id) == [failed]
        (event,) = wait_for(
            lambda: named(client, "prefect.automation.action.failed"), what="action.failed"
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
    client = connect(engine)
    try:
        automation_id = create(client, webhook_automation(receiver.url + "/hook"))
        publish(client, "job.done", "job.1")
        (done,) = wait_for(
            lambda: in_status(client, automation_id, "succeeded"),
            what="success after the deadline",
        )
        assert done["attempts"] >= 2  # the first attempt hit the 0.5 s deadline
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
    client = connect(engine)
    try:
        automation_id = create(client, webhook_automation(receiver.url + "/hook"))
        publish(client, "job.done", "job.1")
        (parked,) = wait_for(
            lambda: in_status(client, automation_id, "dead_letter"),
            what="a dead-lettered invocation",
        )
        assert parked["attempts"] == 3
        assert receiver.count() == 3
        (failed,) = wait_for(
            lambda: named(client, "prefect.automation.action.failed"), what="action.failed"
        )
        assert failed["payload"]["reason"].startswith("Gave up after 3 attempts")

        receiver.reply = Reply(status=200)
        redriven = client.redrive(parked["id"], automation_id=automation_id)
        assert (redriven["id"], redriven["status"]) == (parked["id"], "pending")
        wait_for(lambda: succeeded(client, automation_id) == 1, what="success after the redrive")
        assert receiver.count() == 4
        with pytest.raises(automations.client.CallError) as refused:
            client.redrive(parked["id"])
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        client.close()
        engine.stop()


def test_a_malformed_template_is_refused_at_create(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    client = connect(engine)
    try:
        data = webhook_automation("http://127.0.0.1:9/hook")
        data["actions"][0]["payload"] = "line one\n{{ event.id "
        with pytest.raises(automations.client.CallError) as refused:
            create(client, data)
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.field == "actions[0].payload"
        assert "line 2" in refused.value.message
    finally:
        client.close()
        engine.stop()


def test_automations_feeding_on_each_others_failures_are_cut_by_the_loop_guard(
    tmp_path: Path,
) -> None:
    engine = EngineProcess(tmp_path, env={"AUTOMATIONS_MAX_CHAIN_DEPTH": "3"}).start()
    client = connect(engine)
    try:
        unserved = [{"type": "acme.unserved"}]
        starter = create(
            client,
            {
                "name": "starter",
                "trigger": {"type": "event", "expect": ["job.done"], "threshold": 1, "within": 0},
                "actions": unserved,
            },
        )
        on_failure = {
            "trigger": {
                "type": "event",
                "expect": ["prefect.automation.action.failed"],
                "threshold": 1,
                "within": 0,
            },
            "actions": unserved,
        }
        watchers = [create(client, {"name": f"on any failure {n}", **on_failure}) for n in (1, 2)]
        publish(client, "job.done", "job.1")
        wait_for(
            lambda: all(
                any("chain cut" in (i["last_error"] or "") for i in client.list_invocations(w))
                for w in watchers
            ),
            what="the loop guard",
        )
        # A failure's consequences (its action.failed event, the watcher's next invocation) are
        # committed with it: once nothing is pending or running, the chain has ended.
        wait_for(lambda: settled(client.list_invocations()), what="the chain to settle")
        for watcher in watchers:
            # starter fails (depth 1) -> each watcher fails (2) -> each fails on the other's
            # failure (3) -> cut; neither is fed its own failures
            invocations = client.list_invocations(watcher)
            assert len(invocations) == 3
            assert sum("chain cut" in (i["last_error"] or "") for i in invocations) == 1
        (first,) = client.list_invocations(starter)
        assert first["last_error"] == "No executor serves action type 'acme.unserved'"
    finally:
        client.close()
        engine.stop()


def test_an_automation_is_not_fed_its_own_failures(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    client = connect(engine)
    try:
        watcher = create(
            client,
            {
                "name": "on any event at all",
                "trigger": {"type": "event", "expect": ["*"], "threshold": 1, "within": 0},
                "actions": [{"type": "acme.unserved"}],
            },
        )
        publish(client, "job.done", "job.1")
        wait_for(lambda: client.list_invocations(watcher), what="the watcher's invocation")
        wait_for(lambda: settled(client.list_invocations()), what="the chain to settle")
        assert len(client.list_invocations(watcher)) == 1
        assert len(client.list_firings(watcher)) == 1
    finally:
        client.close()
        engine.stop()


def test_pause_automation_disables_the_selected_automation(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    client = connect(engine)
    try:
        target = create(
            client,
            {
                "name": "target",
                "trigger": {"type": "event", "expect": ["x"], "threshold": 1, "within": 0},
                "actions": [{"type": "do-nothing"}],
            },
        )
        create(
            client,
            {
                "name": "pauser",
                "trigger": {"type": "event", "expect": ["stop"], "threshold": 1, "within": 0},
                "actions": [
                    {"type": "pause-automation", "source": "selected", "automation_id": target}
                ],
            },
        )
        publish(client, "stop", "ops.1")

        wait_for(lambda: not client.get_automation(target)["enabled"], what="the target disabled")
        wait_for(
            lambda: [
                e
                for e in named(client, "prefect.automation.updated")
                if e["resource"]["prefect.resource.id"] == f"prefect.automation.{target}"
            ],
            what="automation.updated for the target",
        )
    finally:
        client.close()
        engine.stop()
