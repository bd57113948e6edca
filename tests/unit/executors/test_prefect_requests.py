"""The REST calls the prefect executor makes, checked against an httpx.MockTransport."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest

from automations import executor
from automations.executor.v1 import executor_service_pb2
from automations.executors import registry
from automations.executors.prefect import ACTION_TYPES, build
from automations.executors.prefect.actions import PrefectActions
from automations.executors.prefect.client import PrefectClient

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
AID = str(uuid.uuid4())
DEP, FR, POOL, QUEUE = (uuid.uuid4() for _ in range(4))
ACCEPT = {"status": "ACCEPT", "details": {"type": "accept_details"}, "state": {}}

Responder = Callable[[httpx.Request], httpx.Response]


class Api:
    """A fake Prefect API: records requests, answers with ``responder``."""

    def __init__(self, responder: Responder | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.responder = responder or (lambda r: httpx.Response(200, json=ACCEPT))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responder(request)

    def actions(self, **client_kwargs: Any) -> PrefectActions:
        client = PrefectClient(
            "http://prefect.test/api/", transport=httpx.MockTransport(self.handle), **client_kwargs
        )
        return PrefectActions(client, clock=lambda: NOW)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def request(
    action_type: str,
    params: dict[str, Any] | None = None,
    *,
    event: tuple[str, ...] | None = None,
    labels: dict[str, str] | None = None,
) -> executor_service_pb2.ExecuteActionRequest:
    req = executor_service_pb2.ExecuteActionRequest(
        action_type=action_type, idempotency_key="key-1", attempt=1, action_index=2
    )
    req.automation.uid = AID
    req.automation.name = f"automations/{AID}"
    req.automation.display_name = "Nightly ✓"
    if params:
        req.parameters.update(params)
    if event is not None:
        req.triggering_event.id = str(uuid.uuid4())
        req.triggering_event.event = "prefect.flow-run.Failed"
        req.triggering_event.resource.labels["prefect.resource.id"] = event[0]
        for resource_id in event[1:]:
            req.triggering_event.related.add().labels["prefect.resource.id"] = resource_id
    for key, value in (labels or {}).items():
        req.triggering_labels[key] = value
    return req


def run(api: Api, req: executor_service_pb2.ExecuteActionRequest, **kw: Any) -> dict[str, Any]:
    actions = api.actions(**kw)
    handler = actions.handlers()[req.action_type]

    async def go() -> dict[str, Any]:
        try:
            result: dict[str, Any] = await handler(req)  # type: ignore[assignment]
            return result
        finally:
            await actions.client.aclose()

    return asyncio.run(go())


def fails(api: Api, req: executor_service_pb2.ExecuteActionRequest) -> executor.ActionError:
    with pytest.raises(executor.ActionError) as info:
        run(api, req)
    return info.value


def test_run_deployment_creates_a_scheduled_run_with_prefects_idempotency_key() -> None:
    api = Api(lambda r: httpx.Response(201, json={"id": str(FR), "name": "brave-fox"}))
    result = run(
        api,
        request(
            "run-deployment",
            {
                "deployment_id": str(DEP),
                "parameters": {"n": 3.0, "names": ["a"], "x": 1.5},
                "job_variables": {"image": "etl:1"},
                "schedule_after": 90,
            },
        ),
    )
    [sent] = api.requests
    assert (sent.method, sent.url.path) == ("POST", f"/api/deployments/{DEP}/create_flow_run")
    body = api.body()
    assert body["idempotency_key"] == f"automation {AID}, action 2, invocation key-1"
    assert body["parameters"] == {"n": 3, "names": ["a"], "x": 1.5}
    assert body["job_variables"] == {"image": "etl:1"}
    assert body["state"]["type"] == "SCHEDULED"
    assert body["state"]["state_details"]["scheduled_time"] == "2025-01-02T03:05:35+00:00"
    assert result["flow_run_id"] == str(FR)
    assert result["deployment_id"] == str(DEP)
    assert result["status_code"] == 201
    assert {r["prefect.resource.role"] for r in result["related"]} == {"target", "flow-run"}


def test_run_deployment_without_parameters_sends_an_empty_object_and_runs_now() -> None:
    api = Api(lambda r: httpx.Response(201, json={"id": str(FR), "name": "n"}))
    run(api, request("run-deployment", {"deployment_id": str(DEP)}))
    body = api.body()
    assert body["parameters"] == {}
    assert body["job_variables"] is None
    assert body["state"]["state_details"]["scheduled_time"] == NOW.isoformat()


def test_every_call_carries_prefects_automation_headers() -> None:
    api = Api()
    run(api, request("pause-deployment", {"deployment_id": str(DEP)}))
    headers = api.requests[0].headers
    assert headers["Prefect-Automation-ID"] == AID
    assert base64.b64decode(headers["Prefect-Automation-Name"]).decode() == "Nightly ✓"


def test_an_api_key_or_auth_string_is_sent_as_authorization() -> None:
    api = Api()
    run(api, request("pause-deployment", {"deployment_id": str(DEP)}), api_key="k")
    assert api.requests[-1].headers["Authorization"] == "Bearer k"
    run(api, request("pause-deployment", {"deployment_id": str(DEP)}), auth_string="u:p")
    assert api.requests[-1].headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


@pytest.mark.parametrize(
    ("action_type", "command"),
    [("pause-deployment", "pause_deployment"), ("resume-deployment", "resume_deployment")],
)
def test_an_inferred_deployment_is_paused_or_resumed(action_type: str, command: str) -> None:
    api = Api()
    event = (f"prefect.flow-run.{FR}", "prefect.flow.x", f"prefect.deployment.{DEP}")
    result = run(api, request(action_type, {"source": "inferred"}, event=event))
    assert api.requests[0].url.path == f"/api/deployments/{DEP}/{command}"
    assert result == {
        "status_code": 200,
        "deployment_id": str(DEP),
        "related": [
            {"prefect.resource.id": f"prefect.deployment.{DEP}", "prefect.resource.role": "target"}
        ],
    }


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "parameters.deployment_id", "deployment_id is required"),
        ({"source": "selected", "deployment_id": None}, "parameters.deployment_id", None),
        (
            {"source": "inferred", "deployment_id": str(DEP)},
            "parameters.deployment_id",
            "deployment_id is not allowed",
        ),
        ({"deployment_id": "nope"}, "parameters.deployment_id", "deployment_id must be a UUID"),
        ({"source": "guessed"}, "parameters.source", None),
        ({"deployment_id": str(DEP), "schedule_after": -1}, "parameters.schedule_after", None),
        ({"deployment_id": str(DEP), "parameters": [1]}, "parameters.parameters", None),
        ({"deployment_id": str(DEP), "job_variables": "x"}, "parameters.job_variables", None),
    ],
)
def test_bad_parameters_are_an_invalid_argument_naming_the_field(
    params: dict[str, Any], field: str, message: str | None
) -> None:
    api = Api()
    error = fails(api, request("run-deployment", params))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.metadata["field"] == field
    if message:
        assert error.message == message
    assert api.requests == []


def test_inferring_without_an_event_fails_with_prefects_reason_and_calls_nothing() -> None:
    api = Api()
    error = fails(api, request("run-deployment", {"source": "inferred"}))
    assert (error.code, error.message) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "No event to infer the deployment",
    )
    assert api.requests == []


def test_cancel_sets_cancelling_with_prefects_message() -> None:
    api = Api()
    result = run(api, request("cancel-flow-run", event=(f"prefect.flow-run.{FR}",)))
    [sent] = api.requests
    assert sent.url.path == f"/api/flow_runs/{FR}/set_state"
    assert api.body() == {
        "state": {"type": "CANCELLING", "message": f"Cancelled by Automation {AID}"},
        "force": False,
    }
    assert result["flow_run_id"] == str(FR)


def test_suspend_pauses_for_an_hour_with_reschedule() -> None:
    api = Api()
    run(api, request("suspend-flow-run", labels={"prefect.resource.id": f"prefect.flow-run.{FR}"}))
    state = api.body()["state"]
    assert (state["type"], state["name"]) == ("PAUSED", "Suspended")
    assert state["message"] == f"Suspended by Automation {AID}"
    assert state["state_details"]["pause_reschedule"] is True
    assert state["state_details"]["pause_timeout"] == "2025-01-02T04:04:05+00:00"


def test_change_state_sends_the_state_name_message_and_force() -> None:
    api = Api()
    event = (f"prefect.flow-run.{FR}",)
    run(
        api,
        request(
            "change-flow-run-state",
            {"state": "failed", "name": "Timed out", "message": "too slow", "force": True},
            event=event,
        ),
    )
    assert api.body() == {
        "state": {"type": "FAILED", "name": "Timed out", "message": "too slow"},
        "force": True,
    }
    run(api, request("change-flow-run-state", {"state": "COMPLETED"}, event=event))
    assert api.body() == {
        "state": {
            "type": "COMPLETED",
            "name": None,
            "message": f"State changed by Automation {AID}",
        },
        "force": False,
    }


@pytest.mark.parametrize(
    "params", [{}, {"state": "DONE"}, {"state": "FAILED", "force": "yes"}, {"state": 3}]
)
def test_change_state_needs_a_valid_state(params: dict[str, Any]) -> None:
    error = fails(
        Api(), request("change-flow-run-state", params, event=(f"prefect.flow-run.{FR}",))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("status", ["REJECT", "ABORT"])
def test_a_state_change_that_is_not_accepted_fails_finally_with_the_reason(status: str) -> None:
    answer = {
        "status": status,
        "details": {"type": f"{status.lower()}_details", "reason": "Run is already CANCELLED."},
    }
    api = Api(lambda r: httpx.Response(200, json=answer))
    error = fails(api, request("cancel-flow-run", event=(f"prefect.flow-run.{FR}",)))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.message == "Failed to set state: Run is already CANCELLED."


def test_a_wait_result_is_retried() -> None:
    answer = {"status": "WAIT", "details": {"type": "wait_details", "delay_seconds": 5}}
    api = Api(lambda r: httpx.Response(200, json=answer))
    error = fails(api, request("cancel-flow-run", event=(f"prefect.flow-run.{FR}",)))
    assert error.retryable
    assert error.metadata["delay_seconds"] == "5"


def test_resume_posts_to_resume_and_fails_when_not_accepted() -> None:
    api = Api()
    run(api, request("resume-flow-run", event=(f"prefect.flow-run.{FR}",)))
    assert (api.requests[0].method, api.requests[0].url.path) == (
        "POST",
        f"/api/flow_runs/{FR}/resume",
    )
    answer = {
        "status": "ABORT",
        "details": {
            "type": "abort_details",
            "reason": "Cannot resume a flow run that is not paused.",
        },
    }
    api = Api(lambda r: httpx.Response(200, json=answer))
    error = fails(api, request("resume-flow-run", event=(f"prefect.flow-run.{FR}",)))
    assert (
        error.message == "Failed to resume flow run: Cannot resume a flow run that is not paused."
    )


def test_delete_deletes_the_inferred_flow_run() -> None:
    api = Api(lambda r: httpx.Response(204))
    result = run(api, request("delete-flow-run", event=(f"prefect.flow-run.{FR}",)))
    assert (api.requests[0].method, api.requests[0].url.path) == ("DELETE", f"/api/flow_runs/{FR}")
    assert result["status_code"] == 204


def test_a_flow_run_action_without_a_flow_run_fails_with_prefects_reason() -> None:
    api = Api()
    error = fails(api, request("cancel-flow-run", event=(f"prefect.deployment.{DEP}",)))
    assert (error.code, error.message) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "No flow run could be inferred",
    )
    assert api.requests == []


def test_a_work_pool_is_read_by_id_then_patched_by_name() -> None:
    def respond(r: httpx.Request) -> httpx.Response:
        if r.url.path.endswith("/filter"):
            return httpx.Response(200, json=[{"id": str(POOL), "name": "k8s pool"}])
        return httpx.Response(204)

    api = Api(respond)
    result = run(api, request("pause-work-pool", {"work_pool_id": str(POOL)}))
    read, patch = api.requests
    assert (read.method, read.url.path) == ("POST", "/api/work_pools/filter")
    assert json.loads(read.content) == {"work_pools": {"id": {"any_": [str(POOL)]}}}
    assert (patch.method, patch.url.raw_path) == ("PATCH", b"/api/work_pools/k8s%20pool")
    assert json.loads(patch.content) == {"is_paused": True}
    assert result["work_pool_name"] == "k8s pool"
    run(api, request("resume-work-pool", {"work_pool_id": str(POOL)}))
    assert api.body() == {"is_paused": False}


def test_a_work_pool_that_does_not_exist_is_not_found() -> None:
    api = Api(lambda r: httpx.Response(200, json=[]))
    error = fails(api, request("resume-work-pool", {"work_pool_id": str(POOL)}))
    assert (error.code, error.message) == (
        grpc.StatusCode.NOT_FOUND,
        f"Work pool {POOL} not found",
    )


def test_an_inferred_work_queue_is_patched() -> None:
    api = Api(lambda r: httpx.Response(204))
    event = ("prefect.worker.x", f"prefect.work-queue.{QUEUE}", f"prefect.work-pool.{POOL}")
    run(api, request("pause-work-queue", {"source": "inferred"}, event=event))
    assert (api.requests[0].method, api.requests[0].url.path) == (
        "PATCH",
        f"/api/work_queues/{QUEUE}",
    )
    assert api.body() == {"is_paused": True}
    error = fails(api, request("resume-work-queue", {"source": "inferred"}))
    assert error.message == "No event to infer the work queue"


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (404, {"detail": "Deployment not found"}, grpc.StatusCode.NOT_FOUND,
         "Unexpected status from 'pause-deployment' action: 404"),
        (422, {"detail": "bad"}, grpc.StatusCode.INVALID_ARGUMENT,
         "Validation error occurred for 'pause-deployment' - bad"),
        (409, {}, grpc.StatusCode.FAILED_PRECONDITION,
         "Conflict (409) occurred for 'pause-deployment' - '{}'"),
        (403, {}, grpc.StatusCode.PERMISSION_DENIED,
         "Unexpected status from 'pause-deployment' action: 403"),
        (500, {}, grpc.StatusCode.UNAVAILABLE,
         "Unexpected status from 'pause-deployment' action: 500"),
        (503, {}, grpc.StatusCode.UNAVAILABLE,
         "Unexpected status from 'pause-deployment' action: 503"),
        (429, {}, grpc.StatusCode.UNAVAILABLE,
         "Unexpected status from 'pause-deployment' action: 429"),
    ],
)  # fmt: skip
def test_http_statuses_map_to_final_or_retried_codes_with_prefects_reason(
    status: int, body: dict[str, Any], code: grpc.StatusCode, message: str
) -> None:
    api = Api(lambda r: httpx.Response(status, json=body))
    error = fails(api, request("pause-deployment", {"deployment_id": str(DEP)}))
    assert (error.code, error.message) == (code, message)
    assert error.metadata["status_code"] == str(status)


def test_connection_errors_are_retried_and_timeouts_are_deadline_exceeded() -> None:
    def refuse(r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=r)

    error = fails(Api(refuse), request("pause-deployment", {"deployment_id": str(DEP)}))
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "PREFECT_API_UNREACHABLE")

    def slow(r: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=r)

    error = fails(Api(slow), request("pause-deployment", {"deployment_id": str(DEP)}))
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED and error.retryable


def test_the_registry_lists_every_action_type_served() -> None:
    assert registry.ACTION_TYPES["prefect"] == ACTION_TYPES
    assert "prefect" in registry.EXECUTORS


def test_building_without_an_api_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    opened: list[int] = []
    with pytest.raises(ValueError, match="PREFECT_API_URL"):
        build("prefect", None, lambda: opened.append(1))  # type: ignore[arg-type,return-value]
    assert opened == []
