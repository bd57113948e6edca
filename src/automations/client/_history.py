"""The client's reads of what automations did: firings and action invocations, and redrive."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from automations.client import _base, _errors, _paging
from automations.domain import errors, invocations
from automations.v1 import automation_service_pb2
from automations.wire import firings as wire_firings
from automations.wire import invocations as wire_invocations
from automations.wire import names


class HistoryCalls(_base.Calls):
    """Firings and invocations as JSON dicts (mixed into ``automations.Client``).

    An ``automation_id`` of None in the single-item calls finds the item whatever its
    automation (firing and invocation ids are unique on their own).
    """

    def list_firings(
        self, automation_id: str | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Returns firings, newest first, following pages.

        Each firing is a dict: ``id``, ``automation_id``, ``trigger_id``, ``trigger_type``,
        ``posture``, ``triggered`` (ISO 8601), ``triggering_event_id``, ``triggering_event``
        (Prefect's event JSON, or None), ``triggering_labels``, ``child_firings``, ``state``
        (``Triggered`` or ``Resolved``) and ``triggering_value`` (a metric's value, or None).

        Args:
            automation_id: Only this automation's firings; default every automation's.
            limit: At most this many; default all.
        """
        parent = names.automation_name(automation_id) if automation_id else ""

        def fetch(token: str, size: int) -> tuple[list[Any], str]:
            request = automation_service_pb2.ListFiringsRequest(
                parent=parent, page_size=size, page_token=token
            )
            reply = self._call(lambda: self._automations.ListFirings(request, timeout=self.timeout))
            return list(reply.firings), reply.next_page_token

        return [wire_firings.firing_to_json(f) for f in _paging.pages(fetch, limit)]

    def get_firing(self, firing_id: str, *, automation_id: str | None = None) -> dict[str, Any]:
        """Returns one stored firing, shaped as ``list_firings``'s.

        Raises:
            CallError: NOT_FOUND if there is none with that id (under that automation).
        """
        name = names.firing_name(automation_id or names.ANY_AUTOMATION, firing_id)
        request = automation_service_pb2.GetFiringRequest(name=name)
        found = self._call(lambda: self._automations.GetFiring(request, timeout=self.timeout))
        return wire_firings.firing_to_json(found)

    def list_invocations(
        self,
        automation_id: str | None = None,
        *,
        statuses: Iterable[str] = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Returns action invocations (the outbox), oldest first, following pages.

        Each is a dict: ``id`` (also the idempotency key executors see), ``automation_id``,
        ``firing_id``, ``action_index``, ``action_type``, ``status``, ``attempts``,
        ``next_attempt``, ``last_error``, ``result``, ``created`` and ``updated``.

        Args:
            automation_id: Only this automation's; default every automation's.
            statuses: Only invocations in these statuses: ``pending``, ``running``,
                ``succeeded``, ``failed``, ``dead_letter``. Empty: every status.
            limit: At most this many; default all.

        Raises:
            CallError: INVALID_ARGUMENT for an unknown status.
        """
        parent = names.automation_name(automation_id) if automation_id else ""
        states = []
        for i, status in enumerate(statuses):
            try:
                states.append(
                    wire_invocations.INVOCATION_STATES[invocations.InvocationStatus(status)]
                )
            except ValueError:
                raise _errors.CallError.from_invalid(
                    errors.InvalidArgument(
                        f"statuses[{i}]",
                        f"{status!r} is not one of {', '.join(invocations.InvocationStatus)}",
                    )
                ) from None

        def fetch(token: str, size: int) -> tuple[list[Any], str]:
            request = automation_service_pb2.ListActionInvocationsRequest(
                parent=parent, states=states, page_size=size, page_token=token
            )
            reply = self._call(
                lambda: self._automations.ListActionInvocations(request, timeout=self.timeout)
            )
            return list(reply.action_invocations), reply.next_page_token

        return [wire_invocations.invocation_to_json(i) for i in _paging.pages(fetch, limit)]

    def get_invocation(
        self, invocation_id: str, *, automation_id: str | None = None
    ) -> dict[str, Any]:
        """Returns one action invocation, shaped as ``list_invocations``'s.

        Raises:
            CallError: NOT_FOUND if there is none with that id (under that automation).
        """
        name = names.invocation_name(automation_id or names.ANY_AUTOMATION, invocation_id)
        request = automation_service_pb2.GetActionInvocationRequest(name=name)
        found = self._call(
            lambda: self._automations.GetActionInvocation(request, timeout=self.timeout)
        )
        return wire_invocations.invocation_to_json(found)

    def redrive(self, invocation_id: str, *, automation_id: str | None = None) -> dict[str, Any]:
        """Puts a failed or dead-lettered invocation back to pending, due at once.

        It keeps its idempotency key; its attempts start again.

        Returns:
            The invocation, shaped as ``list_invocations``'s.

        Raises:
            CallError: FAILED_PRECONDITION for an invocation in another status, NOT_FOUND for
                an unknown one.
        """
        name = names.invocation_name(automation_id or names.ANY_AUTOMATION, invocation_id)
        request = automation_service_pb2.RedriveActionRequest(name=name)
        found = self._call(lambda: self._automations.RedriveAction(request, timeout=self.timeout))
        return wire_invocations.invocation_to_json(found)
