"""Prefect's lazily loaded template objects: flow_run, flow, deployment, work_pool, work_queue.

As in Prefect (``JinjaTemplateAction._template_context``), each is the first resource of its kind
in the event the action sees — the primary resource, then ``related`` in order — fetched from the
Prefect API, and only when one of the action's templates names it. It is None when the event has
no such resource or the API does not know it. ``flow_run.state`` is rebuilt from the event's
``prefect.state-*`` labels, so it is the state *at the event*, not the run's current state.

Objects are the JSON objects the API returns (``template_context.PrefectObject``, which also knows
its kind for the ``ui_url`` filters): templates read them with attribute access
(``{{ flow_run.name }}``, ``{{ deployment.tags }}``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from automations.actions import template_context
from automations.domain import events

logger = logging.getLogger(__name__)

KINDS: Mapping[str, str] = {
    "flow_run": "prefect.flow-run",
    "flow": "prefect.flow",
    "deployment": "prefect.deployment",
    "work_pool": "prefect.work-pool",
    "work_queue": "prefect.work-queue",
}
"""Template variable -> resource kind (the resource id without its last dotted part)."""


def first_resource_id(event: events.Event | None, kind: str) -> str | None:
    """The id (last dotted part) of the first resource of ``kind`` in the event, if a UUID."""
    if event is None:
        return None
    for labels in (event.resource, *event.related):
        resource_kind, _, last = labels.get(events.RESOURCE_ID, "").rpartition(".")
        if resource_kind == kind:
            try:
                return str(uuid.UUID(last))
            except ValueError:
                return None
    return None


def state_at_event(event: events.Event, flow_run_id: str) -> dict[str, Any] | None:
    """The flow run's state as the event's ``prefect.state-*`` labels describe it."""
    for labels in (event.resource, *event.related):
        if labels.get(events.RESOURCE_ID) != f"prefect.flow-run.{flow_run_id}":
            continue
        if "prefect.state-type" not in labels:
            return None
        return {
            "type": labels.get("prefect.state-type"),
            "name": labels.get("prefect.state-name"),
            "message": labels.get("prefect.state-message", ""),
            "timestamp": labels.get("prefect.state-timestamp"),
        }
    return None


class PrefectObjects:
    """Loads Prefect objects for templates from a Prefect server's REST API.

    Args:
        api_url: The API root, e.g. ``http://127.0.0.1:4200/api``.
        timeout: Seconds per request.
        client: An HTTP client to use (tests); one is created otherwise.
    """

    def __init__(
        self, api_url: str, *, timeout: float = 10.0, client: httpx.AsyncClient | None = None
    ) -> None:
        self._api = api_url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def load(self, names: Iterable[str], event: events.Event | None) -> dict[str, Any]:
        """Fetches the objects among ``names`` that templates refer to.

        Returns:
            Variable -> object (or None), for each name that is one of ``KINDS``.
        """
        out: dict[str, Any] = {}
        for name in sorted(set(names) & KINDS.keys()):
            object_id = first_resource_id(event, KINDS[name])
            found = None if object_id is None else await self._fetch(name, object_id)
            if found is not None and name == "flow_run" and event is not None:
                state = state_at_event(event, object_id or "")
                if state is not None:
                    found["state"] = state
            out[name] = (
                None
                if found is None
                else template_context.PrefectObject(KINDS[name].partition(".")[2], found)
            )
        return out

    async def _fetch(self, name: str, object_id: str) -> dict[str, Any] | None:
        try:
            if name == "work_pool":  # work pools are addressed by name; find it by id
                response = await self._client.post(
                    f"{self._api}/work_pools/filter",
                    json={"work_pools": {"id": {"any_": [object_id]}}, "limit": 1},
                )
                response.raise_for_status()
                found = response.json()
                return dict(found[0]) if found else None
            path = {
                "flow_run": "flow_runs",
                "flow": "flows",
                "deployment": "deployments",
                "work_queue": "work_queues",
            }[name]
            response = await self._client.get(f"{self._api}/{path}/{object_id}")
            if response.status_code == 404:
                return None
            response.raise_for_status()
            return dict(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            # the template then sees None, as Prefect's does for an object it cannot load
            logger.warning("loading a Prefect %s for a template failed: %s", name, exc)
            return None

    async def close(self) -> None:
        """Closes the HTTP client."""
        await self._client.aclose()
