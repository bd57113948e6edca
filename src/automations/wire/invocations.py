"""Action invocations from the domain model to ``ActionInvocation`` messages, their states, JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automations.domain import errors, invocations, prefect_json
from automations.v1 import action_invocation_pb2
from automations.wire import names, structs

INVOCATION_STATES = {
    invocations.InvocationStatus.PENDING: action_invocation_pb2.ActionInvocation.STATE_PENDING,
    invocations.InvocationStatus.RUNNING: action_invocation_pb2.ActionInvocation.STATE_RUNNING,
    invocations.InvocationStatus.SUCCEEDED: action_invocation_pb2.ActionInvocation.STATE_SUCCEEDED,
    invocations.InvocationStatus.FAILED: action_invocation_pb2.ActionInvocation.STATE_FAILED,
    invocations.InvocationStatus.DEAD_LETTER: action_invocation_pb2.ActionInvocation.STATE_DEAD_LETTERED,
}
"""Outbox status -> ``ActionInvocation.State``."""

INVOCATION_STATUSES = {state: status for status, state in INVOCATION_STATES.items()}
"""``ActionInvocation.State`` -> outbox status."""


def invocation_status_from_proto(
    state: action_invocation_pb2.ActionInvocation.State.ValueType, *, field: str
) -> invocations.InvocationStatus:
    """The status of an ``ActionInvocation.State``."""
    status = INVOCATION_STATUSES.get(state)
    if status is None:
        raise errors.InvalidArgument(field, "must be a known state other than STATE_UNSPECIFIED")
    return status


def invocation_to_proto(item: invocations.Invocation) -> action_invocation_pb2.ActionInvocation:
    """The ``ActionInvocation`` message of an outbox row."""
    message = action_invocation_pb2.ActionInvocation(
        name=names.invocation_name(item.automation_id, item.id),
        uid=item.id,
        automation=names.automation_name(item.automation_id),
        firing_uid=item.firing_id,
        action_index=item.action_index,
        action_type=item.action_type,
        state=INVOCATION_STATES[item.status],
        attempts=item.attempts,
        last_error=item.last_error or "",
    )
    if item.status in (invocations.InvocationStatus.PENDING, invocations.InvocationStatus.RUNNING):
        structs.set_timestamp(message.next_attempt_time, item.next_attempt_at)
    if isinstance(item.result, Mapping):
        structs.fill_struct(message.result, item.result, field="result")
    structs.set_timestamp(message.create_time, item.created)
    structs.set_timestamp(message.update_time, item.updated)
    return message


def invocation_to_json(message: action_invocation_pb2.ActionInvocation) -> dict[str, Any]:
    """Returns an ``ActionInvocation`` message as the JSON the CLI and the client show.

    Keys: ``id``, ``automation_id``, ``firing_id``, ``action_index``, ``action_type``,
    ``status`` (an ``InvocationStatus`` string: ``pending``, ``running``, ``succeeded``,
    ``failed``, ``dead_letter``), ``attempts``, ``next_attempt`` (ISO 8601 or None),
    ``last_error`` (or None), ``result`` (the executor's result, or None), ``created`` and
    ``updated``.
    """
    return {
        "id": message.uid,
        "automation_id": message.automation.split("/", 1)[-1],
        "firing_id": message.firing_uid,
        "action_index": message.action_index,
        "action_type": message.action_type,
        "status": str(INVOCATION_STATUSES.get(message.state, "unknown")),
        "attempts": message.attempts,
        "next_attempt": (
            prefect_json.iso_time(structs.timestamp_to_seconds(message.next_attempt_time))
            if message.HasField("next_attempt_time")
            else None
        ),
        "last_error": message.last_error or None,
        "result": structs.struct_to_dict(message.result) if message.HasField("result") else None,
        "created": prefect_json.iso_time(structs.timestamp_to_seconds(message.create_time)),
        "updated": prefect_json.iso_time(structs.timestamp_to_seconds(message.update_time)),
    }
