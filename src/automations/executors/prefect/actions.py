"""One handler per Prefect orchestration action, each a few REST calls to the Prefect API.

The calls are Prefect's own (``prefect.server.api.clients.OrchestrationClient``):

=======================  ==================================================================
run-deployment           ``POST /deployments/{id}/create_flow_run``: a Scheduled run at now +
                         ``schedule_after`` with Prefect's idempotency key
pause-deployment         ``POST /deployments/{id}/pause_deployment``
resume-deployment        ``POST /deployments/{id}/resume_deployment``
cancel-flow-run          ``POST /flow_runs/{id}/set_state`` CANCELLING
suspend-flow-run         ``POST /flow_runs/{id}/set_state`` Suspended (PAUSED, 3600 s, reschedule)
resume-flow-run          ``POST /flow_runs/{id}/resume``
change-flow-run-state    ``POST /flow_runs/{id}/set_state`` with ``state``, ``name``, ``message``,
                         ``force``
delete-flow-run          ``DELETE /flow_runs/{id}``
pause-/resume-work-pool  ``POST /work_pools/filter`` by id (pools are addressed by name), then
                         ``PATCH /work_pools/{name}`` ``is_paused``
pause-/resume-work-queue ``PATCH /work_queues/{id}`` ``is_paused``
=======================  ==================================================================

Idempotency: the harness answers a repeated ``idempotency_key`` from its store; run-deployment
also sends Prefect's key ``automation <aid>, action <idx>, invocation <key>``, on which Prefect's
``create_flow_run`` dedupes, so a retry creates one flow run even if the executor lost its store.

Results carry what Prefect records (``status_code``) plus the ids acted on and ``related``: the
related resources Prefect puts on its ``action.executed`` event (the target with role
``target``; for run-deployment also the created run with role ``flow-run``).

An orchestration result other than ACCEPT fails finally with FAILED_PRECONDITION and Prefect's
reason (``Failed to set state: <reason>``, ``Failed to resume flow run: <reason>``). **Deliberate
difference from Prefect:** a WAIT result is UNAVAILABLE, retried by the engine after a backoff,
instead of a final failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import grpc

from automations import executor
from automations.executor.v1 import executor_service_pb2
from automations.executors.prefect import inference, validation
from automations.executors.prefect.client import PrefectClient, automation_headers, json_body
from automations.v1 import event_pb2

Request = executor_service_pb2.ExecuteActionRequest

SUSPEND_TIMEOUT_SECONDS = 3600
"""How long a run suspended by an automation waits to be resumed (as Prefect)."""


def prefect_idempotency_key(request: Request) -> str:
    """Prefect's ``TriggeredAction.idempotency_key()`` for this invocation."""
    return (
        f"automation {request.automation.uid}, action {request.action_index}, "
        f"invocation {request.idempotency_key}"
    )


def triggering_event(request: Request) -> event_pb2.Event | None:
    """The request's triggering event, or None when it has none."""
    return request.triggering_event if request.HasField("triggering_event") else None


def target(kind: str, object_id: uuid.UUID | str, name: str | None = None) -> dict[str, str]:
    """A related resource with role ``target``, as Prefect adds to its executed event."""
    related = {"prefect.resource.id": f"{kind}.{object_id}", "prefect.resource.role": "target"}
    if name is not None:
        related["prefect.resource.name"] = name
    return related


def check_orchestration(body: Any, failure_prefix: str) -> None:
    """Raises unless ``body`` is an OrchestrationResult that accepted the transition."""
    details = body.get("details") if isinstance(body, dict) else None
    details = details if isinstance(details, dict) else {}
    status = body.get("status") if isinstance(body, dict) else None
    if details.get("type") == "accept_details" or (status == "ACCEPT" and not details):
        return
    reason = details.get("reason")
    message = f"{failure_prefix}: {reason}"
    metadata = {"orchestration_status": str(status)}
    if status == "WAIT" or details.get("type") == "wait_details":
        if "delay_seconds" in details:
            metadata["delay_seconds"] = str(details["delay_seconds"])
        raise executor.ActionError(
            grpc.StatusCode.UNAVAILABLE, message, "PREFECT_STATE_WAIT", metadata
        )
    raise executor.ActionError(
        grpc.StatusCode.FAILED_PRECONDITION, message, "PREFECT_STATE_NOT_ACCEPTED", metadata
    )


@dataclass(frozen=True, slots=True)
class Invocation:
    """What every handler reads from a request."""

    action_type: str
    params: dict[str, Any]
    headers: dict[str, str]
    automation_id: str

    @classmethod
    def of(cls, request: Request) -> Invocation:
        """Reads ``request``."""
        return cls(
            action_type=request.action_type,
            params=executor.parameters_to_dict(request.parameters),
            headers=automation_headers(request.automation),
            automation_id=request.automation.uid,
        )


class PrefectActions:
    """The handlers of the ``prefect`` executor, sharing one :class:`PrefectClient`.

    Args:
        client: The Prefect API.
        clock: The current time (UTC), for scheduled and pause-timeout times.
    """

    def __init__(
        self, client: PrefectClient, *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.client = client
        self._clock = clock or (lambda: datetime.now(UTC))

    def handlers(self) -> dict[str, executor.Handler]:
        """Every action type served, with its handler."""
        return {
            "run-deployment": self.run_deployment,
            "pause-deployment": self.pause_deployment,
            "resume-deployment": self.resume_deployment,
            "cancel-flow-run": self.cancel_flow_run,
            "suspend-flow-run": self.suspend_flow_run,
            "resume-flow-run": self.resume_flow_run,
            "change-flow-run-state": self.change_flow_run_state,
            "delete-flow-run": self.delete_flow_run,
            "pause-work-pool": self.pause_work_pool,
            "resume-work-pool": self.resume_work_pool,
            "pause-work-queue": self.pause_work_queue,
            "resume-work-queue": self.resume_work_queue,
        }

    async def _act(
        self,
        call: Invocation,
        method: str,
        path: str,
        kind: str,
        object_id: uuid.UUID,
        *,
        name: str | None = None,
        json: Any = None,
        refused: str | None = None,
    ) -> dict[str, Any]:
        """One API call on one Prefect object, and the action's result.

        Args:
            call: The invocation.
            method: The HTTP method.
            path: The API path.
            kind: The object's resource kind, e.g. ``prefect.flow-run``.
            object_id: The object acted on.
            name: Its name, when the action looked it up (recorded as ``<kind>_name``).
            json: The request body, if any.
            refused: The message when Prefect's orchestration refuses the change (for state
                changes, whose answers carry an orchestration status), else None.

        Returns:
            ``status_code``, ``<kind>_id`` (and ``<kind>_name``) and the ``related`` resource.
        """
        response = await self.client.call(
            method, path, action_type=call.action_type, headers=call.headers, json=json
        )
        if refused is not None:
            check_orchestration(json_body(response), refused)
        field = kind.removeprefix("prefect.").replace("-", "_")
        result: dict[str, Any] = {
            "status_code": response.status_code,
            f"{field}_id": str(object_id),
        }
        if name is not None:
            result[f"{field}_name"] = name
        result["related"] = [target(kind, object_id, name)]
        return result

    # deployments

    @staticmethod
    def deployment_id(request: Request, params: Mapping[str, Any]) -> uuid.UUID:
        """The selected deployment, or the one inferred from the triggering event."""
        source, selected = validation.selected_id(params, "deployment_id")
        if selected is not None:
            return selected
        assert source == "inferred"
        return inference.infer(inference.DEPLOYMENT, triggering_event(request))

    def flow_run_create(self, request: Request, params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``create_flow_run`` body of run-deployment (Prefect's DeploymentFlowRunCreate)."""
        delay = validation.schedule_after_seconds(params)
        scheduled_time = self._clock() + timedelta(seconds=delay)
        return {
            "state": {
                "type": "SCHEDULED",
                "name": "Scheduled",
                "message": None,
                "state_details": {"scheduled_time": scheduled_time.isoformat()},
            },
            "parameters": validation.optional_object(params, "parameters") or {},
            "idempotency_key": prefect_idempotency_key(request),
            "job_variables": validation.optional_object(params, "job_variables"),
        }

    async def run_deployment(self, request: Request) -> dict[str, Any]:
        """Creates a Scheduled flow run of the deployment (once per invocation)."""
        call = Invocation.of(request)
        deployment_id = self.deployment_id(request, call.params)
        body = self.flow_run_create(request, call.params)
        response = await self.client.call(
            "POST",
            f"/deployments/{deployment_id}/create_flow_run",
            action_type=call.action_type,
            headers=call.headers,
            json=body,
        )
        flow_run = json_body(response)
        flow_run = flow_run if isinstance(flow_run, dict) else {}
        flow_run_id = str(flow_run.get("id", ""))
        flow_run_name = str(flow_run.get("name") or "")
        return {
            "status_code": response.status_code,
            "deployment_id": str(deployment_id),
            "flow_run_id": flow_run_id,
            "flow_run_name": flow_run_name,
            "idempotency_key": body["idempotency_key"],
            "related": [
                target("prefect.deployment", deployment_id),
                {
                    "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                    "prefect.resource.role": "flow-run",
                    "prefect.resource.name": flow_run_name,
                },
            ],
        }

    async def _deployment_command(self, request: Request, command: str) -> dict[str, Any]:
        call = Invocation.of(request)
        deployment_id = self.deployment_id(request, call.params)
        path = f"/deployments/{deployment_id}/{command}"
        return await self._act(call, "POST", path, "prefect.deployment", deployment_id)

    async def pause_deployment(self, request: Request) -> dict[str, Any]:
        """Pauses the deployment (its schedules stop creating runs)."""
        return await self._deployment_command(request, "pause_deployment")

    async def resume_deployment(self, request: Request) -> dict[str, Any]:
        """Resumes the deployment."""
        return await self._deployment_command(request, "resume_deployment")

    # flow runs

    @staticmethod
    def flow_run_id(request: Request) -> uuid.UUID:
        """The inferred flow run: the triggering labels first, then the triggering event."""
        return inference.infer_flow_run(triggering_event(request), request.triggering_labels)

    def new_state(self, call: Invocation) -> tuple[dict[str, Any], bool]:
        """The state a flow-run state action proposes, and whether it is forced."""
        automation = call.automation_id
        if call.action_type == "cancel-flow-run":
            return {"type": "CANCELLING", "message": f"Cancelled by Automation {automation}"}, False
        if call.action_type == "suspend-flow-run":
            timeout = self._clock() + timedelta(seconds=SUSPEND_TIMEOUT_SECONDS)
            return {
                "type": "PAUSED",
                "name": "Suspended",
                "message": f"Suspended by Automation {automation}",
                "state_details": {
                    "pause_timeout": timeout.isoformat(),
                    "pause_reschedule": True,
                    "pause_key": None,
                },
            }, False
        state: dict[str, Any] = {
            "type": validation.state_type(call.params),
            "name": validation.optional_string(call.params, "name"),
            "message": validation.optional_string(call.params, "message")
            or f"State changed by Automation {automation}",
        }
        return state, validation.flag(call.params, "force")

    async def _set_state(self, request: Request) -> dict[str, Any]:
        call = Invocation.of(request)
        state, force = self.new_state(call)
        flow_run_id = self.flow_run_id(request)
        return await self._act(
            call,
            "POST",
            f"/flow_runs/{flow_run_id}/set_state",
            "prefect.flow-run",
            flow_run_id,
            json={"state": state, "force": force},
            refused="Failed to set state",
        )

    async def cancel_flow_run(self, request: Request) -> dict[str, Any]:
        """Moves the flow run to CANCELLING ("Cancelled by Automation <id>")."""
        return await self._set_state(request)

    async def suspend_flow_run(self, request: Request) -> dict[str, Any]:
        """Suspends the flow run (PAUSED "Suspended", 3600 s timeout, rescheduled on resume)."""
        return await self._set_state(request)

    async def change_flow_run_state(self, request: Request) -> dict[str, Any]:
        """Proposes the action's ``state`` (``name``, ``message``, ``force``) for the flow run."""
        return await self._set_state(request)

    async def resume_flow_run(self, request: Request) -> dict[str, Any]:
        """Resumes a paused or suspended flow run."""
        call = Invocation.of(request)
        flow_run_id = self.flow_run_id(request)
        path = f"/flow_runs/{flow_run_id}/resume"
        return await self._act(
            call, "POST", path, "prefect.flow-run", flow_run_id, refused="Failed to resume flow run"
        )

    async def delete_flow_run(self, request: Request) -> dict[str, Any]:
        """Deletes the flow run."""
        call = Invocation.of(request)
        flow_run_id = self.flow_run_id(request)
        path = f"/flow_runs/{flow_run_id}"
        return await self._act(call, "DELETE", path, "prefect.flow-run", flow_run_id)

    # work pools and work queues

    async def _work_pool_name(self, call: Invocation, work_pool_id: uuid.UUID) -> str:
        response = await self.client.call(
            "POST",
            "/work_pools/filter",
            action_type=call.action_type,
            headers=call.headers,
            json={"work_pools": {"id": {"any_": [str(work_pool_id)]}}},
        )
        pools = json_body(response)
        if not isinstance(pools, list) or not pools or not isinstance(pools[0], dict):
            raise executor.ActionError(
                grpc.StatusCode.NOT_FOUND,
                f"Work pool {work_pool_id} not found",
                "PREFECT_WORK_POOL_NOT_FOUND",
            )
        return str(pools[0].get("name", ""))

    async def _pause_work_pool(self, request: Request, paused: bool) -> dict[str, Any]:
        call = Invocation.of(request)
        _, selected = validation.selected_id(call.params, "work_pool_id")
        work_pool_id = selected or inference.infer(inference.WORK_POOL, triggering_event(request))
        name = await self._work_pool_name(call, work_pool_id)
        return await self._act(
            call,
            "PATCH",
            f"/work_pools/{quote(name, safe='')}",
            "prefect.work-pool",
            work_pool_id,
            name=name,
            json={"is_paused": paused},
        )

    async def pause_work_pool(self, request: Request) -> dict[str, Any]:
        """Pauses the work pool."""
        return await self._pause_work_pool(request, True)

    async def resume_work_pool(self, request: Request) -> dict[str, Any]:
        """Resumes the work pool."""
        return await self._pause_work_pool(request, False)

    async def _pause_work_queue(self, request: Request, paused: bool) -> dict[str, Any]:
        call = Invocation.of(request)
        _, selected = validation.selected_id(call.params, "work_queue_id")
        queue_id = selected or inference.infer(inference.WORK_QUEUE, triggering_event(request))
        path = f"/work_queues/{queue_id}"
        return await self._act(
            call, "PATCH", path, "prefect.work-queue", queue_id, json={"is_paused": paused}
        )

    async def pause_work_queue(self, request: Request) -> dict[str, Any]:
        """Pauses the work queue."""
        return await self._pause_work_queue(request, True)

    async def resume_work_queue(self, request: Request) -> dict[str, Any]:
        """Resumes the work queue."""
        return await self._pause_work_queue(request, False)
