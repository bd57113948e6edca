"""Calling the real prefect executor the way the engine does, with Prefect-shaped events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from automations.executor.v1 import executor_service_pb2
from tests.integration.executors.executor_process import ExecutorProcess, Failure, failure
from tests.integration.prefect.prefect_server import PrefectApi

AUTOMATION_ID = str(uuid.uuid4())

Resource = Mapping[str, str]


def prefect_event(resource: Resource, *related: Resource) -> dict[str, Any]:
    """An event shaped like the ones Prefect emits (a resource plus related ones with roles)."""
    return {
        "id": str(uuid.uuid4()),
        "event": "prefect.flow-run.Failed",
        "occurred": datetime.now(UTC).isoformat(),
        "resource": {"labels": dict(resource)},
        "related": [{"labels": dict(r)} for r in related],
    }


def flow_run_event(flow_run_id: str, *related: Resource) -> dict[str, Any]:
    return prefect_event(
        {
            "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
            "prefect.resource.name": "brave-fox",
            "prefect.state-type": "FAILED",
            "prefect.state-name": "Failed",
        },
        *related,
    )


def from_prefect(event: Mapping[str, Any]) -> dict[str, Any]:
    """A Prefect event as read from ``/api/events/filter``, in ``automations.v1.Event`` JSON."""
    return {
        "id": event["id"],
        "event": event["event"],
        "occurred": event["occurred"],
        "resource": {"labels": event["resource"]},
        "related": [{"labels": r} for r in event["related"]],
        "payload": event.get("payload") or {},
    }


def role(kind: str, object_id: str, name: str) -> dict[str, str]:
    return {"prefect.resource.id": f"prefect.{kind}.{object_id}", "prefect.resource.role": name}


def build_request(
    action_type: str,
    params: Mapping[str, Any] | None = None,
    *,
    key: str | None = None,
    event: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    attempt: int = 1,
) -> executor_service_pb2.ExecuteActionRequest:
    req = executor_service_pb2.ExecuteActionRequest(
        action_type=action_type,
        idempotency_key=key or str(uuid.uuid4()),
        attempt=attempt,
        action_index=0,
    )
    req.automation.uid = AUTOMATION_ID
    req.automation.name = f"automations/{AUTOMATION_ID}"
    req.automation.display_name = "prefect integration"
    req.firing.uid = str(uuid.uuid4())
    req.firing.trigger_id = "t1"
    if params:
        req.parameters.update(dict(params))
    if event is not None:
        json_format.ParseDict(dict(event), req.triggering_event)
    for name, value in (labels or {}).items():
        req.triggering_labels[name] = value
    return req


def call(
    executor: ExecutorProcess, action_type: str, params: Mapping[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    """Calls the executor; retries UNAVAILABLE (SQLite busy) with the same key, as the engine."""
    request = build_request(action_type, params, **kw)
    deadline = time.monotonic() + 30  # a busy machine keeps SQLite busy longer
    with executor.stub() as stub:
        while True:
            try:
                reply = stub.ExecuteAction(request, timeout=30)
                break
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
                request.attempt += 1
    result: dict[str, Any] = json_format.MessageToDict(reply.result)
    return result


def call_fails(
    executor: ExecutorProcess, action_type: str, params: Mapping[str, Any] | None = None, **kw: Any
) -> Failure:
    with executor.stub() as stub, pytest.raises(grpc.RpcError) as info:
        stub.ExecuteAction(build_request(action_type, params, **kw), timeout=30)
    return failure(info.value)


def state_of(api: PrefectApi, flow_run_id: str) -> dict[str, Any]:
    state: dict[str, Any] = api.get(f"/flow_runs/{flow_run_id}")["state"]
    return state
