"""Inference from the events a real Prefect server emits (its event persister on)."""

from __future__ import annotations

import pytest

from tests.integration.executors.executor_process import ExecutorProcess
from tests.integration.prefect.calls import call, from_prefect, state_of
from tests.integration.prefect.prefect_server import PrefectApi

pytestmark = pytest.mark.timeout(300)

PREFECT_EVENTS = True
"""This module's Prefect server runs its event persister (see conftest.prefect_server)."""


def test_inference_picks_each_target_from_a_real_prefect_flow_run_event(
    prefect_executor: ExecutorProcess, prefect_api: PrefectApi
) -> None:
    pool = prefect_api.work_pool()
    deployment_id = prefect_api.deployment(work_pool_name=pool["name"])
    flow_run_id = prefect_api.flow_run(deployment_id)
    prefect_api.set_state(flow_run_id, "RUNNING")
    event = from_prefect(
        prefect_api.events_of(f"prefect.flow-run.{flow_run_id}", "prefect.flow-run.Running")
    )
    inferred = {"source": "inferred"}

    assert call(prefect_executor, "pause-deployment", inferred, event=event)["deployment_id"] == (
        deployment_id
    )
    assert prefect_api.get(f"/deployments/{deployment_id}")["paused"] is True
    pool_result = call(prefect_executor, "pause-work-pool", inferred, event=event)
    assert pool_result["work_pool_id"] == pool["id"]
    assert prefect_api.get(f"/work_pools/{pool['name']}")["is_paused"] is True
    queue_result = call(prefect_executor, "pause-work-queue", inferred, event=event)
    assert queue_result["work_queue_id"] == pool["default_queue_id"]
    assert prefect_api.get(f"/work_queues/{pool['default_queue_id']}")["is_paused"] is True
    call(prefect_executor, "cancel-flow-run", event=event)
    assert state_of(prefect_api, flow_run_id)["type"] in ("CANCELLING", "CANCELLED")
