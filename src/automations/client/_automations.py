"""The client's automation calls: create, read, list, update, delete, enable, disable, simulate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from automations.client import _base, _errors, _events, _paging
from automations.domain import errors
from automations.v1 import automation_pb2, automation_service_pb2
from automations.wire import automations as wire_automations
from automations.wire import firings as wire_firings
from automations.wire import names, structs


class AutomationCalls(_base.Calls):
    """Automations in and out as Prefect's JSON (mixed into ``automations.Client``)."""

    def create_automation(
        self, automation: Mapping[str, Any], *, automation_id: str = ""
    ) -> dict[str, Any]:
        """Creates an automation from Prefect's automation JSON.

        Args:
            automation: The automation, as in an automation file (``name``, ``trigger``,
                ``actions``, ...). Validated here first, with the server's checks.
            automation_id: The id to give it: 1 to 63 lower-case letters, digits and ``-``,
                starting with a letter and not ending with ``-``, or a lower-case UUID; default:
                one the server picks (a UUID). An ``id`` in ``automation`` is ignored, so the
                output of ``get_automation`` can be created again as a copy.

        Returns:
            The new automation as Prefect's JSON, with its ``id``, ``created`` and ``updated``.

        Raises:
            CallError: INVALID_ARGUMENT with the bad field's path, ALREADY_EXISTS, ...
        """
        message = _automation_message(automation)
        try:
            if automation_id:
                names.check_automation_id(automation_id)
        except errors.InvalidArgument as exc:
            raise _errors.CallError.from_invalid(exc) from None
        message.ClearField("name")
        message.ClearField("uid")
        request = automation_service_pb2.CreateAutomationRequest(
            automation=message, automation_id=automation_id
        )
        created = self._call(
            lambda: self._automations.CreateAutomation(request, timeout=self.timeout)
        )
        return wire_automations.automation_to_prefect_json(created)

    def update_automation(
        self, automation_id: str, automation: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replaces an automation's definition (Prefect's PUT) and returns it as Prefect's JSON.

        Raises:
            CallError: NOT_FOUND, INVALID_ARGUMENT with the bad field's path, ...
        """
        message = _automation_message(automation)
        message.name = names.automation_name(automation_id)
        message.etag = ""
        request = automation_service_pb2.UpdateAutomationRequest(automation=message)
        updated = self._call(
            lambda: self._automations.UpdateAutomation(request, timeout=self.timeout)
        )
        return wire_automations.automation_to_prefect_json(updated)

    def get_automation(self, automation_id: str) -> dict[str, Any]:
        """Returns one automation as Prefect's JSON.

        Raises:
            CallError: NOT_FOUND if there is none with that id.
        """
        request = automation_service_pb2.GetAutomationRequest(
            name=names.automation_name(automation_id)
        )
        found = self._call(lambda: self._automations.GetAutomation(request, timeout=self.timeout))
        return wire_automations.automation_to_prefect_json(found)

    def list_automations(
        self, *, filter: str = "", limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Returns the automations (oldest first) as Prefect's JSON, following pages.

        Args:
            filter: Only those that pass this AIP-160 filter, e.g. ``enabled = true AND
                tags:"prod"`` (see ``ListAutomationsRequest.filter`` for what is supported).
            limit: At most this many; default all.

        Raises:
            CallError: INVALID_ARGUMENT on ``filter`` for an unsupported filter.
        """

        def fetch(token: str, size: int) -> tuple[list[Any], str]:
            request = automation_service_pb2.ListAutomationsRequest(
                page_size=size, page_token=token, filter=filter
            )
            reply = self._call(
                lambda: self._automations.ListAutomations(request, timeout=self.timeout)
            )
            return list(reply.automations), reply.next_page_token

        return [wire_automations.automation_to_prefect_json(a) for a in _paging.pages(fetch, limit)]

    def delete_automation(self, automation_id: str) -> None:
        """Deletes an automation and its trigger state (its firings are kept).

        Raises:
            CallError: NOT_FOUND if there is none with that id.
        """
        request = automation_service_pb2.DeleteAutomationRequest(
            name=names.automation_name(automation_id)
        )
        self._call(lambda: self._automations.DeleteAutomation(request, timeout=self.timeout))

    def enable_automation(self, automation_id: str) -> dict[str, Any]:
        """Enables an automation (its triggers start from nothing); returns it as Prefect's JSON.

        Raises:
            CallError: NOT_FOUND if there is none with that id.
        """
        request = automation_service_pb2.EnableAutomationRequest(
            name=names.automation_name(automation_id)
        )
        found = self._call(
            lambda: self._automations.EnableAutomation(request, timeout=self.timeout)
        )
        return wire_automations.automation_to_prefect_json(found)

    def disable_automation(self, automation_id: str) -> dict[str, Any]:
        """Disables an automation (its trigger state is dropped); returns it as Prefect's JSON.

        Raises:
            CallError: NOT_FOUND if there is none with that id.
        """
        request = automation_service_pb2.DisableAutomationRequest(
            name=names.automation_name(automation_id)
        )
        found = self._call(
            lambda: self._automations.DisableAutomation(request, timeout=self.timeout)
        )
        return wire_automations.automation_to_prefect_json(found)

    def simulate(
        self,
        automation: Mapping[str, Any],
        steps: Iterable[Mapping[str, Any]],
        *,
        until: float | None = None,
        start: float | None = None,
    ) -> list[dict[str, Any]]:
        """Runs an automation (stored or not) over timed events on the server's virtual clock.

        Nothing is stored and no action runs: the result is the firings the automation would
        produce, through the same engine code as live events.

        Args:
            automation: Prefect's automation JSON; validated as by ``create_automation``.
            steps: The events to deliver, in time order, as a conformance scenario's steps:
                ``{"at": seconds after start, "event": Prefect's event JSON}`` (an event without
                ``occurred`` occurs when delivered; one without ``id`` gets a random one).
            until: Seconds after ``start`` the clock runs to (inclusive); default the last
                step's ``at``.
            start: The clock's time zero, seconds since the epoch; default 0.

        Returns:
            The Triggered firings of the automation's top-level trigger, in order, shaped as
            ``list_firings``'s (their ``id``s are deterministic, their ``automation_id`` is
            ``simulation``); :meth:`simulate_outcome` has the Resolved ones too.

        Raises:
            CallError: INVALID_ARGUMENT with the bad field's path (``automation.trigger...``,
                ``events[2].event.resource``, ...; ``until`` or ``events`` beyond the engine's
                simulation limits, see docs/configuration.md); DEADLINE_EXCEEDED past its
                ``simulation_timeout_seconds``.
        """
        return self.simulate_outcome(automation, steps, until=until, start=start)["firings"]

    def simulate_outcome(
        self,
        automation: Mapping[str, Any],
        steps: Iterable[Mapping[str, Any]],
        *,
        until: float | None = None,
        start: float | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """As :meth:`simulate`: ``{"firings": [...], "resolutions": [...]}``.

        ``firings`` are the Triggered firings, ``resolutions`` the Resolved ones (a metric back
        within its threshold, a proactive trigger's events resuming), both shaped as
        ``list_firings``'s, as ``automations simulate`` prints them.

        Raises:
            CallError: INVALID_ARGUMENT with the bad field's path.
        """
        request = automation_service_pb2.SimulateAutomationRequest(
            automation=_automation_message(automation)
        )
        try:
            for i, step in enumerate(steps):
                if not isinstance(step, Mapping) or "at" not in step or "event" not in step:
                    raise errors.InvalidArgument(
                        f"steps[{i}]", "must be {'at': ..., 'event': {...}}"
                    )
                item = request.events.add()
                item.offset.CopyFrom(structs.seconds_to_duration(float(step["at"])))
                try:
                    item.event.CopyFrom(_events.event_message(step["event"]))
                except errors.InvalidArgument as exc:
                    raise exc.under(f"steps[{i}].event") from None
        except errors.InvalidArgument as exc:
            raise _errors.CallError.from_invalid(exc) from None
        if until is not None:
            request.until.CopyFrom(structs.seconds_to_duration(until))
        if start is not None:
            request.start_time.CopyFrom(structs.seconds_to_timestamp(start))
        reply = self._call(
            lambda: self._automations.SimulateAutomation(request, timeout=self.timeout)
        )
        return {
            "firings": [wire_firings.firing_to_json(f) for f in reply.firings],
            "resolutions": [wire_firings.firing_to_json(f) for f in reply.resolutions],
        }


def _automation_message(automation: Mapping[str, Any]) -> automation_pb2.Automation:
    try:
        return wire_automations.automation_proto_from_prefect_json(automation)
    except errors.InvalidArgument as exc:
        raise _errors.CallError.from_invalid(exc) from None
