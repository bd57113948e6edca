"""``automations.v1.AutomationService``: automation CRUD, simulation, firings and invocations.

Writes go through the single writer (so the engine and the database change together, in one
transaction); reads use their own connections. An update keeps the state of every trigger whose
definition did not change and resets the others.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from google.protobuf import empty_pb2

from automations.actions import checks
from automations.api import paging, simulation_worker
from automations.domain import automations, errors, firings, invocations
from automations.pipeline import writer as writer_
from automations.v1 import (
    action_invocation_pb2,
    automation_pb2,
    automation_service_pb2,
    automation_service_pb2_grpc,
    firing_pb2,
)
from automations.wire import automation_filter, names
from automations.wire import automations as wire_automations
from automations.wire import firings as wire_firings
from automations.wire import invocations as wire_invocations


class Reader(Protocol):
    """Read-side queries the servicer needs (run in worker threads)."""

    def get_automation(self, automation_id: str) -> automations.Automation:
        """Returns one automation or raises NotFound."""
        ...

    def list_automations(
        self,
        *,
        page_size: int,
        page_token: str,
        matches: Callable[[automations.Automation], bool] | None = None,
        enabled: bool | None = None,
    ) -> tuple[list[automations.Automation], str]:
        """Returns a page of the automations ``matches`` accepts and the next page token."""
        ...

    def get_firing(self, firing_id: str) -> firings.Firing:
        """Returns one stored firing or raises NotFound."""
        ...

    def get_invocation(self, invocation_id: str) -> invocations.Invocation:
        """Returns one action invocation or raises NotFound."""
        ...

    def list_firings(
        self, *, automation_id: str | None, page_size: int, page_token: str
    ) -> tuple[list[firings.Firing], str]:
        """Returns a page of firings, newest first, and the next page token."""
        ...

    def list_invocations(
        self,
        *,
        automation_id: str | None,
        statuses: list[invocations.InvocationStatus] | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[invocations.Invocation], str]:
        """Returns a page of action invocations, oldest first, and the next page token."""
        ...


class Simulations(Protocol):
    """Runs serialized SimulateAutomation requests (``simulation_pool.SimulationPool``)."""

    async def run(self, request: bytes) -> bytes:
        """Returns the serialized response, or raises a domain error."""
        ...


class AutomationService(automation_service_pb2_grpc.AutomationServiceServicer):
    """Creates, reads, updates, deletes and simulates automations.

    Args:
        writer: The single writer; its backend applies automation changes to store and engine
            (``pipeline.backend.EngineBackend``, or a cluster replica's ``ClusterBackend``: both
            have ``changes`` and ``outbox`` with the same methods).
        reader: Read-side queries.
        clock: Wall clock, seconds since the epoch.
        on_redrive: Called after an invocation was redriven (wakes the dispatcher).
        simulations: Where SimulateAutomation runs (``simulation_pool.SimulationPool``); None:
            in a thread of this process without limits (tests, embedding).
    """

    def __init__(
        self,
        writer: writer_.Writer[Any],
        reader: Reader,
        *,
        clock: Callable[[], float] = time.time,
        on_redrive: Callable[[], None] | None = None,
        simulations: Simulations | None = None,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._clock = clock
        self._on_redrive = on_redrive
        self._simulations = simulations

    async def CreateAutomation(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.CreateAutomationRequest, context: Any
    ) -> automation_pb2.Automation:
        """Validates and stores a new automation (or only validates it)."""
        if not request.HasField("automation"):
            raise errors.InvalidArgument("automation", "is required")
        automation_id = names.check_automation_id(request.automation_id or str(uuid.uuid4()))
        now = self._clock()
        automation = wire_automations.automation_from_proto(
            request.automation, automation_id=automation_id, created=now, updated=now
        )
        if request.validate_only:
            checks.check_automation(automation)
            return wire_automations.automation_to_proto(automation)
        stored = await self._writer.call(lambda backend: backend.changes.create(automation))
        return wire_automations.automation_to_proto(stored)

    async def GetAutomation(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.GetAutomationRequest, context: Any
    ) -> automation_pb2.Automation:
        """Returns one automation."""
        automation_id = names.automation_id_from_name(request.name)
        found = await asyncio.to_thread(self._reader.get_automation, automation_id)
        return wire_automations.automation_to_proto(found)

    async def ListAutomations(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.ListAutomationsRequest, context: Any
    ) -> automation_service_pb2.ListAutomationsResponse:
        """Returns a page of the automations that pass ``filter``."""
        size = paging.page_size(request.page_size)
        selected = automation_filter.parse(request.filter)
        found, token = await asyncio.to_thread(
            lambda: self._reader.list_automations(
                page_size=size,
                page_token=request.page_token,
                matches=selected.matches if selected.terms else None,
                enabled=selected.enabled,
            )
        )
        return automation_service_pb2.ListAutomationsResponse(
            automations=[wire_automations.automation_to_proto(a) for a in found],
            next_page_token=token,
        )

    async def UpdateAutomation(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.UpdateAutomationRequest, context: Any
    ) -> automation_pb2.Automation:
        """Replaces the fields named by ``update_mask`` (all mutable fields when it is empty)."""
        if not request.HasField("automation"):
            raise errors.InvalidArgument("automation", "is required")
        automation_id = names.automation_id_from_name(
            request.automation.name, field="automation.name"
        )
        current = await asyncio.to_thread(self._reader.get_automation, automation_id)
        if request.automation.etag and request.automation.etag != names.etag(current):
            raise errors.Aborted(
                f"the automation changed since it was read (etag {request.automation.etag!r} is stale)"
            )
        mask = request.update_mask if request.HasField("update_mask") else None
        updated = wire_automations.apply_update(
            current, request.automation, mask, updated=self._clock()
        )
        if request.validate_only:
            checks.check_automation(updated)
            return wire_automations.automation_to_proto(updated)
        stored = await self._writer.call(lambda backend: backend.changes.update(updated))
        return wire_automations.automation_to_proto(stored)

    async def DeleteAutomation(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.DeleteAutomationRequest, context: Any
    ) -> empty_pb2.Empty:
        """Deletes an automation and its trigger state."""
        automation_id = names.automation_id_from_name(request.name)
        etag = request.etag or None
        await self._writer.call(lambda backend: backend.changes.delete(automation_id, etag=etag))
        return empty_pb2.Empty()

    async def EnableAutomation(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.EnableAutomationRequest, context: Any
    ) -> automation_pb2.Automation:
        """Enables an automation (loads it into the engine)."""
        return await self._set_enabled(request.name, True)

    async def DisableAutomation(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.DisableAutomationRequest, context: Any
    ) -> automation_pb2.Automation:
        """Disables an automation (unloads it from the engine)."""
        return await self._set_enabled(request.name, False)

    async def _set_enabled(self, name: str, enabled: bool) -> automation_pb2.Automation:
        automation_id = names.automation_id_from_name(name)
        now = self._clock()
        stored = await self._writer.call(
            lambda backend: backend.changes.set_enabled(automation_id, enabled, now)
        )
        return wire_automations.automation_to_proto(stored)

    async def SimulateAutomation(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.SimulateAutomationRequest, context: Any
    ) -> automation_service_pb2.SimulateAutomationResponse:
        """Runs the automation over timed events on a virtual clock; returns its firings.

        Triggered firings in ``firings``, Resolved ones beside them in ``resolutions``. With
        ``simulations`` it runs in a worker process within their limits (validation included),
        stopped if the call is cancelled; without, in a thread of this process, unbounded.
        """
        if self._simulations is None:
            return await asyncio.to_thread(
                simulation_worker.respond, request, simulation_worker.Limits()
            )
        answer = await self._simulations.run(request.SerializeToString())
        return automation_service_pb2.SimulateAutomationResponse.FromString(answer)

    async def GetFiring(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.GetFiringRequest, context: Any
    ) -> firing_pb2.Firing:
        """Returns one stored firing."""
        automation_id, firing_id = names.firing_ids_from_name(request.name)
        found = await asyncio.to_thread(self._reader.get_firing, firing_id)
        if automation_id is not None and found.automation_id != automation_id:
            raise errors.NotFound(f"firing {request.name!r} not found")
        return wire_firings.firing_to_proto(found)

    async def ListFirings(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.ListFiringsRequest, context: Any
    ) -> automation_service_pb2.ListFiringsResponse:
        """Returns firings, newest first, of one automation or of all."""
        automation_id = _list_parent(request.parent)
        size = paging.page_size(request.page_size)
        found, token = await asyncio.to_thread(
            lambda: self._reader.list_firings(
                automation_id=automation_id,
                page_size=size,
                page_token=request.page_token,
            )
        )
        return automation_service_pb2.ListFiringsResponse(
            firings=[wire_firings.firing_to_proto(f) for f in found], next_page_token=token
        )

    async def GetActionInvocation(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.GetActionInvocationRequest, context: Any
    ) -> action_invocation_pb2.ActionInvocation:
        """Returns one action invocation."""
        found = await self._invocation(request.name)
        return wire_invocations.invocation_to_proto(found)

    async def ListActionInvocations(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.ListActionInvocationsRequest, context: Any
    ) -> automation_service_pb2.ListActionInvocationsResponse:
        """Returns action invocations (the outbox), oldest first."""
        automation_id = _list_parent(request.parent)
        size = paging.page_size(request.page_size)
        statuses = [
            wire_invocations.invocation_status_from_proto(state, field=f"states[{i}]")
            for i, state in enumerate(request.states)
        ]
        found, token = await asyncio.to_thread(
            lambda: self._reader.list_invocations(
                automation_id=automation_id,
                statuses=statuses or None,
                page_size=size,
                page_token=request.page_token,
            )
        )
        return automation_service_pb2.ListActionInvocationsResponse(
            action_invocations=[wire_invocations.invocation_to_proto(i) for i in found],
            next_page_token=token,
        )

    async def RedriveAction(  # noqa: N802 - gRPC method name
        self, request: automation_service_pb2.RedriveActionRequest, context: Any
    ) -> action_invocation_pb2.ActionInvocation:
        """Re-queues a failed or dead-lettered invocation."""
        invocation_id = (await self._invocation(request.name)).id
        redriven = await self._writer.call(lambda backend: backend.outbox.redrive(invocation_id))
        if self._on_redrive is not None:
            self._on_redrive()
        return wire_invocations.invocation_to_proto(redriven)

    async def _invocation(self, name: str) -> invocations.Invocation:
        """The invocation a name ``automations/{automation}/actionInvocations/{id}`` names."""
        automation_id, invocation_id = names.invocation_ids_from_name(name)
        found = await asyncio.to_thread(self._reader.get_invocation, invocation_id)
        if automation_id is not None and found.automation_id != automation_id:
            raise errors.NotFound(f"action invocation {name!r} not found")
        return found


def _list_parent(parent: str) -> str | None:
    """The automation id of a List request's ``parent`` (None: every automation's)."""
    if parent and parent != "automations/-":
        return names.automation_id_from_name(parent, field="parent")
    return None
