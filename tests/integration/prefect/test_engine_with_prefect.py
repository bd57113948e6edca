"""The engine itself (``automations serve --prefect-api-url``) acting on a real Prefect server.

What a user relies on: with a Prefect API configured, ``serve`` starts its bundled ``prefect``
executor, so an automation's Prefect actions change the real server's objects, and action
templates can name the Prefect objects of the triggering event (``flow_run``, ``deployment``,
``flow``, ...), loaded from that server.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

import automations
from automations.v1 import event_pb2
from tests import waiting
from tests.integration.engine_process import EngineProcess
from tests.integration.executors.executor_process import Receiver
from tests.integration.prefect.calls import role
from tests.integration.prefect.prefect_server import PrefectApi, PrefectServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

T = TypeVar("T")
WAIT_SECONDS = 60.0
"""The bound of every wait: far beyond what any step needs on an idle machine."""


@pytest.fixture(scope="module")
def engine(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EngineProcess]:
    """``automations serve`` with its bundled executors and the module's Prefect server."""
    proc = EngineProcess(
        tmp_path_factory.mktemp("engine"),
        bundled_executors=True,
        extra_args=("--prefect-api-url", prefect_server.api_url),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def client(engine: EngineProcess) -> Iterator[automations.Client]:
    with automations.Client(engine.grpc_addr) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def create(client: automations.Client, data: dict[str, Any]) -> str:
    return str(client.create_automation(data)["id"])


def reactive(name: str, event: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "trigger": {
            "type": "event",
            "posture": "Reactive",
            "expect": [event],
            "threshold": 1,
            "within": 0,
        },
        "actions": actions,
    }


def wait_for(check: Callable[[], T], what: str) -> T:
    return waiting.wait_until(check, timeout=WAIT_SECONDS, interval=0.1, what=what)


def publish(client: automations.Client, event: event_pb2.Event | dict[str, Any]) -> None:
    (result,) = client.publish([event])
    assert result.status == "accepted", result


def publish_named(client: automations.Client, name: str, resource_id: str) -> None:
    publish(client, {"event": name, "resource": {"prefect.resource.id": resource_id}})


def finished(
    client: automations.Client, automation_id: str, n: int, engine: EngineProcess
) -> list[dict[str, Any]]:
    """The automation's ``n`` invocations, once none is pending or running any more."""

    def done() -> list[dict[str, Any]]:
        found = client.list_invocations(automation_id)
        busy = ("pending", "running")
        return found if len(found) == n and all(i["status"] not in busy for i in found) else []

    try:
        found = wait_for(done, f"{n} finished invocations")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nengine log:\n{engine.log()[-4000:]}") from None
    return sorted(found, key=lambda i: int(i["action_index"]))


def test_run_deployment_through_the_engine_creates_one_prefect_run_with_rendered_parameters(
    engine: EngineProcess, client: automations.Client, prefect_api: PrefectApi
) -> None:
    deployment_id = prefect_api.deployment()
    automation_id = create(
        client,
        reactive(
            "run on request",
            "acme.deploy-requested",
            [
                {
                    "type": "run-deployment",
                    "source": "selected",
                    "deployment_id": deployment_id,
                    "parameters": {"who": "{{ event.resource.id }}"},
                }
            ],
        ),
    )
    publish_named(client, "acme.deploy-requested", "acme.team.7")

    (invocation,) = finished(client, automation_id, 1, engine)
    assert invocation["status"] == "succeeded", invocation["last_error"]
    (run,) = prefect_api.flow_runs_of(deployment_id)
    assert run["parameters"] == {"who": "acme.team.7"}
    assert invocation["result"]["flow_run_id"] == run["id"]
    (executed,) = wait_for(
        lambda: [
            e
            for e in client.list_events(names=["prefect.automation.action.executed"])
            if e["payload"].get("invocation") == invocation["id"]
        ],
        "action.executed",
    )
    assert executed["payload"]["action_type"] == "run-deployment"
    assert executed["payload"]["flow_run_id"] == run["id"]


def test_a_prefect_flow_run_event_pauses_its_inferred_deployment_and_renders_real_objects(
    engine: EngineProcess, client: automations.Client, prefect_api: PrefectApi, receiver: Receiver
) -> None:
    flow_id = prefect_api.flow()
    deployment_id = prefect_api.deployment(flow_id)
    flow_run_id = prefect_api.flow_run(deployment_id)  # Scheduled in Prefect; Failed at the event
    run = prefect_api.get(f"/flow_runs/{flow_run_id}")
    deployment = prefect_api.get(f"/deployments/{deployment_id}")
    flow = prefect_api.get(f"/flows/{flow_id}")
    assert deployment["paused"] is False
    automation_id = create(
        client,
        reactive(
            "pause on failure",
            "prefect.flow-run.Failed",
            [
                {"type": "pause-deployment", "source": "inferred"},
                {
                    "type": "call-webhook",
                    "url": receiver.url + "/failed",
                    "payload": (
                        "{{ flow_run.name }}|{{ flow_run.state.name }}"
                        "|{{ deployment.name }}|{{ flow.name }}"
                    ),
                },
            ],
        ),
    )
    publish(
        client,
        event_pb2.Event(
            id=str(uuid.uuid4()),
            event="prefect.flow-run.Failed",
            resource=event_pb2.Resource(
                labels={
                    "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                    "prefect.resource.name": run["name"],
                    "prefect.state-type": "FAILED",
                    "prefect.state-name": "Failed",
                }
            ),
            related=[
                event_pb2.Resource(labels=role("deployment", deployment_id, "deployment")),
                event_pb2.Resource(labels=role("flow", flow_id, "flow")),
            ],
        ),
    )

    pause, webhook = finished(client, automation_id, 2, engine)
    assert pause["status"] == "succeeded", pause["last_error"]
    assert webhook["status"] == "succeeded", webhook["last_error"]
    assert prefect_api.get(f"/deployments/{deployment_id}")["paused"] is True
    (request,) = receiver.requests
    assert request.body.decode() == f"{run['name']}|Failed|{deployment['name']}|{flow['name']}"
