"""Prefect's template objects are loaded only when named, from the event's first resource."""

from __future__ import annotations

import json

import httpx

from automations.dispatch import prefect_context
from automations.domain import events

RUN = "0b7e2a52-6f1f-4c8e-9a4b-1f2e3d4c5b6a"
DEPLOYMENT = "5a1d6c3e-2b4f-4e8a-8c9d-0e1f2a3b4c5d"
POOL = "9f8e7d6c-5b4a-4321-8765-0fedcba98765"


def event() -> events.Event:
    return events.Event(
        id="e1",
        event="prefect.flow-run.Failed",
        occurred=0.0,
        resource={
            "prefect.resource.id": f"prefect.flow-run.{RUN}",
            "prefect.state-type": "FAILED",
            "prefect.state-name": "Failed",
        },
        related=(
            {"prefect.resource.id": "prefect.flow.not-a-uuid", "prefect.resource.role": "flow"},
            {
                "prefect.resource.id": f"prefect.deployment.{DEPLOYMENT}",
                "prefect.resource.role": "deployment",
            },
            {"prefect.resource.id": f"prefect.work-pool.{POOL}", "prefect.resource.role": "pool"},
        ),
    )


def api(requests: list[str]) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(f"{request.method} {request.url.path}")
        if request.url.path == f"/api/flow_runs/{RUN}":
            return httpx.Response(200, json={"id": RUN, "name": "dashing-otter", "state": None})
        if request.url.path == f"/api/deployments/{DEPLOYMENT}":
            return httpx.Response(200, json={"id": DEPLOYMENT, "name": "etl"})
        if request.url.path == "/api/work_pools/filter":
            body = json.loads(request.content)
            assert body["work_pools"]["id"]["any_"] == [POOL]
            return httpx.Response(200, json=[{"id": POOL, "name": "k8s", "is_paused": False}])
        return httpx.Response(404, json={"detail": "not found"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_only_the_named_objects_are_fetched_and_the_state_is_the_events() -> None:
    requests: list[str] = []
    loader = prefect_context.PrefectObjects("http://prefect/api", client=api(requests))
    found = await loader.load({"event", "flow_run", "deployment"}, event())
    assert found["flow_run"]["name"] == "dashing-otter"
    assert found["flow_run"]["state"]["type"] == "FAILED"
    assert found["deployment"]["name"] == "etl"
    assert "work_pool" not in found
    assert requests == [f"GET /api/deployments/{DEPLOYMENT}", f"GET /api/flow_runs/{RUN}"]


async def test_a_work_pool_is_found_by_id_and_a_bad_id_gives_none() -> None:
    loader = prefect_context.PrefectObjects("http://prefect/api", client=api([]))
    found = await loader.load({"work_pool", "flow", "work_queue"}, event())
    assert found["work_pool"]["name"] == "k8s"
    assert found["work_pool"].kind == "work-pool"  # for the ui_url filters
    assert found["flow"] is None  # the first flow resource's id is not a UUID: no fall-through
    assert found["work_queue"] is None  # no such resource in the event


async def test_without_an_event_every_object_is_none() -> None:
    loader = prefect_context.PrefectObjects("http://prefect/api", client=api([]))
    assert await loader.load({"flow_run"}, None) == {"flow_run": None}
