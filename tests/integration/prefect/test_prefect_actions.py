"""The real ``automations executor prefect`` acting on a real Prefect server's objects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from tests.integration.engine_process import free_port
from tests.integration.executors.executor_process import ExecutorProcess, running_executor
from tests.integration.prefect.calls import (
    AUTOMATION_ID,
    call,
    call_fails,
    flow_run_event,
    prefect_event,
    role,
    state_of,
)
from tests.integration.prefect.prefect_server import PrefectApi, PrefectServer

pytestmark = pytest.mark.timeout(300)


def test_a_selected_deployment_is_paused_then_resumed(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    deployment_id = prefect_api.deployment()
    result = call(prefect_executor, "pause-deployment", {"deployment_id": deployment_id})
    assert prefect_api.get(f"/deployments/{deployment_id}")["paused"] is True
    assert result["deployment_id"] == deployment_id
    assert result["related"] == [role("deployment", deployment_id, "target")]
    call(prefect_executor, "resume-deployment", {"deployment_id": deployment_id})
    assert prefect_api.get(f"/deployments/{deployment_id}")["paused"] is False


def test_run_deployment_creates_a_scheduled_run_with_the_rendered_parameters(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    deployment_id = prefect_api.deployment(parameters={"n": 1, "who": "default"})
    before = datetime.now(UTC)
    result = call(
        prefect_executor,
        "run-deployment",
        {
            "deployment_id": deployment_id,
            "parameters": {"n": 3, "tags": ["a", "b"]},
            "job_variables": {"env": {"MODE": "automated"}},
            "schedule_after": 3600,
        },
    )
    run = prefect_api.get(f"/flow_runs/{result['flow_run_id']}")
    assert run["deployment_id"] == deployment_id
    assert run["parameters"] == {"n": 3, "who": "default", "tags": ["a", "b"]}
    assert run["job_variables"] == {"env": {"MODE": "automated"}}
    assert run["state"]["type"] == "SCHEDULED"
    start = datetime.fromisoformat(run["state"]["state_details"]["scheduled_time"])
    assert before + timedelta(seconds=3590) < start < before + timedelta(seconds=3660)
    assert run["idempotency_key"].startswith(f"automation {AUTOMATION_ID}, action 0, invocation ")
    assert result["flow_run_name"] == run["name"]


def test_a_retried_invocation_creates_one_run_even_after_the_executor_lost_its_state(
    prefect_server: PrefectServer, prefect_api: PrefectApi, tmp_path: Path
) -> None:
    deployment_id = prefect_api.deployment()
    key = str(uuid.uuid4())
    params = {"deployment_id": deployment_id}
    args = ("--prefect-api-url", prefect_server.api_url)
    with running_executor("prefect", tmp_path, args=args) as executor:
        first = call(executor, "run-deployment", params, key=key)
        again = call(executor, "run-deployment", params, key=key, attempt=2)
        state = executor.state
    assert again == first
    state.unlink()  # the executor forgets every key: only Prefect's idempotency key is left
    with running_executor("prefect", tmp_path, args=args) as executor:
        retried = call(executor, "run-deployment", params, key=key, attempt=3)
    assert retried["flow_run_id"] == first["flow_run_id"]
    assert [r["id"] for r in prefect_api.flow_runs_of(deployment_id)] == [first["flow_run_id"]]


def test_run_deployment_infers_the_deployment_of_a_flow_run_event(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    flow_id = prefect_api.flow()
    deployment_id = prefect_api.deployment(flow_id)
    other = prefect_api.deployment(flow_id)
    failed_run = prefect_api.flow_run(other)
    event = flow_run_event(
        failed_run,
        role("flow", flow_id, "flow"),
        role("deployment", deployment_id, "deployment"),
        role("deployment", other, "deployment"),
    )
    result = call(prefect_executor, "run-deployment", {"source": "inferred"}, event=event)
    assert result["deployment_id"] == deployment_id
    assert prefect_api.get(f"/flow_runs/{result['flow_run_id']}")["deployment_id"] == deployment_id


def test_nothing_to_infer_fails_finally_with_prefects_reason(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    flow_id = prefect_api.flow()
    event = prefect_event(role("flow", flow_id, "flow"))
    no_deployment = call_fails(
        prefect_executor, "run-deployment", {"source": "inferred"}, event=event
    )
    assert (no_deployment.code, no_deployment.message) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "No deployment could be inferred",
    )
    no_event = call_fails(prefect_executor, "pause-deployment", {"source": "inferred"})
    assert no_event.message == "No event to infer the deployment"
    no_run = call_fails(prefect_executor, "cancel-flow-run", event=event)
    assert (no_run.code, no_run.message) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "No flow run could be inferred",
    )
    bad_first = prefect_event({"prefect.resource.id": "prefect.deployment.not-a-uuid"})
    bad_first["related"] = [{"labels": role("deployment", prefect_api.deployment(), "x")}]
    assert (
        call_fails(
            prefect_executor, "pause-deployment", {"source": "inferred"}, event=bad_first
        ).message
        == "No deployment could be inferred"
    )


def test_a_deployment_that_does_not_exist_is_not_found_and_bad_parameters_are_invalid(
    prefect_executor: ExecutorProcess,
) -> None:
    missing = call_fails(prefect_executor, "pause-deployment", {"deployment_id": str(uuid.uuid4())})
    assert (missing.code, missing.message) == (
        grpc.StatusCode.NOT_FOUND,
        "Unexpected status from 'pause-deployment' action: 404",
    )
    invalid = call_fails(prefect_executor, "run-deployment", {})
    assert (invalid.code, invalid.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "deployment_id is required",
    )
    assert invalid.metadata["field"] == "parameters.deployment_id"


def test_a_flow_run_from_the_triggering_labels_is_cancelled(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    deployment_id = prefect_api.deployment()
    flow_run_id = prefect_api.flow_run(deployment_id)
    prefect_api.set_state(flow_run_id, "RUNNING")
    decoy = prefect_api.flow_run(deployment_id)
    result = call(
        prefect_executor,
        "cancel-flow-run",
        labels={"prefect.resource.id": f"prefect.flow-run.{flow_run_id}"},
        event=flow_run_event(decoy),
    )
    state = state_of(prefect_api, flow_run_id)
    assert state["type"] in ("CANCELLING", "CANCELLED")
    assert state["message"] == f"Cancelled by Automation {AUTOMATION_ID}"
    assert result["flow_run_id"] == flow_run_id
    assert state_of(prefect_api, decoy)["type"] == "SCHEDULED"


def test_change_flow_run_state_sets_the_given_state(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    flow_run_id = prefect_api.flow_run(prefect_api.deployment())
    event = flow_run_event(flow_run_id)
    call(prefect_executor, "change-flow-run-state", {"state": "RUNNING"}, event=event)
    assert state_of(prefect_api, flow_run_id)["message"] == (
        f"State changed by Automation {AUTOMATION_ID}"
    )
    call(
        prefect_executor,
        "change-flow-run-state",
        {"state": "FAILED", "name": "Timed out", "message": "too slow", "force": True},
        event=event,
    )
    state = state_of(prefect_api, flow_run_id)
    assert (state["type"], state["name"], state["message"]) == ("FAILED", "Timed out", "too slow")


def test_suspend_then_resume_a_running_flow_run(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    flow_run_id = prefect_api.flow_run(prefect_api.deployment())
    event = flow_run_event(flow_run_id)
    not_running = call_fails(prefect_executor, "suspend-flow-run", event=event)
    assert (not_running.code, not_running.message) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "Failed to set state: Cannot suspend flows that are not currently running.",
    )
    prefect_api.set_state(flow_run_id, "RUNNING")
    call(prefect_executor, "suspend-flow-run", event=event)
    state = state_of(prefect_api, flow_run_id)
    assert (state["type"], state["name"]) == ("PAUSED", "Suspended")
    assert state["state_details"]["pause_reschedule"] is True
    assert state["message"] == f"Suspended by Automation {AUTOMATION_ID}"
    call(prefect_executor, "resume-flow-run", event=event)
    assert state_of(prefect_api, flow_run_id)["type"] in ("SCHEDULED", "RUNNING")
    not_paused = call_fails(prefect_executor, "resume-flow-run", event=event)
    assert not_paused.code == grpc.StatusCode.FAILED_PRECONDITION
    assert not_paused.message.startswith("Failed to resume flow run: ")


def test_a_flow_run_is_deleted(prefect_executor: ExecutorProcess, prefect_api: PrefectApi) -> None:
    flow_run_id = prefect_api.flow_run(prefect_api.deployment())
    event = flow_run_event(flow_run_id)
    call(prefect_executor, "delete-flow-run", event=event)
    assert prefect_api.status(f"/flow_runs/{flow_run_id}") == 404
    gone = call_fails(prefect_executor, "delete-flow-run", event=event)
    assert gone.code == grpc.StatusCode.NOT_FOUND


def test_an_inferred_work_pool_is_paused_then_resumed_by_name(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    pool = prefect_api.work_pool()
    event = flow_run_event(
        str(uuid.uuid4()),
        role("work-queue", pool["default_queue_id"], "work-queue"),
        role("work-pool", pool["id"], "work-pool"),
    )
    result = call(prefect_executor, "pause-work-pool", {"source": "inferred"}, event=event)
    assert result["work_pool_name"] == pool["name"]
    assert prefect_api.get(f"/work_pools/{pool['name']}")["is_paused"] is True
    call(prefect_executor, "resume-work-pool", {"work_pool_id": pool["id"]})
    assert prefect_api.get(f"/work_pools/{pool['name']}")["is_paused"] is False
    missing = call_fails(prefect_executor, "pause-work-pool", {"work_pool_id": str(uuid.uuid4())})
    assert missing.code == grpc.StatusCode.NOT_FOUND


def test_a_work_queue_is_paused_then_resumed(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    queue_id = prefect_api.work_pool()["default_queue_id"]
    call(prefect_executor, "pause-work-queue", {"work_queue_id": queue_id})
    assert prefect_api.get(f"/work_queues/{queue_id}")["is_paused"] is True
    event = prefect_event(role("work-queue", queue_id, "work-queue"))
    call(prefect_executor, "resume-work-queue", {"source": "inferred"}, event=event)
    assert prefect_api.get(f"/work_queues/{queue_id}")["is_paused"] is False


def test_an_unreachable_prefect_api_is_retried(tmp_path: Path) -> None:
    args = ("--prefect-api-url", f"http://127.0.0.1:{free_port()}/api")
    with running_executor("prefect", tmp_path, args=args) as executor:
        error = call_fails(executor, "pause-deployment", {"deployment_id": str(uuid.uuid4())})
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "PREFECT_API_UNREACHABLE")
