"""Checks an event against Prefect's limits before it is accepted."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from automations.domain import automations, errors, events, triggers


def validate_event(
    event: events.Event, *, max_size: int = events.MAX_EVENT_SIZE_BYTES, size: int | None = None
) -> None:
    """Raises InvalidArgument naming the field when ``event`` breaks one of Prefect's limits.

    Args:
        event: The event to check.
        max_size: The largest serialized size accepted, in bytes.
        size: The event's serialized size when the caller knows it (skips re-encoding).
    """
    if not event.id:
        raise errors.InvalidArgument("id", "is required", reason="MISSING_EVENT_ID")
    if not event.event:
        raise errors.InvalidArgument("event", "is required", reason="MISSING_EVENT_NAME")
    if len(event.event) > events.MAX_EVENT_NAME_LENGTH:
        raise errors.InvalidArgument(
            "event",
            f"is longer than {events.MAX_EVENT_NAME_LENGTH} characters",
            reason="EVENT_NAME_TOO_LONG",
        )
    if not events.MIN_OCCURRED <= event.occurred <= events.MAX_OCCURRED:  # NaN fails too
        raise errors.InvalidArgument(
            "occurred",
            "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
            reason="OCCURRED_OUT_OF_RANGE",
        )
    if type(event.payload) is dict and _nests_deeper(event.payload, events.MAX_PAYLOAD_DEPTH):
        raise errors.InvalidArgument(
            "payload",
            f"nests objects and lists more than {events.MAX_PAYLOAD_DEPTH} deep",
            reason="PAYLOAD_TOO_DEEP",
        )
    resource_id = event.resource.get(events.RESOURCE_ID)
    if not resource_id:
        raise errors.InvalidArgument(
            "resource",
            "must have a non-empty 'prefect.resource.id' label",
            reason="MISSING_RESOURCE_ID",
        )
    if len(event.resource) > events.MAX_LABELS_PER_RESOURCE:
        raise errors.InvalidArgument(
            "resource",
            f"has more than {events.MAX_LABELS_PER_RESOURCE} labels",
            reason="TOO_MANY_LABELS",
        )
    if len(event.related) > events.MAX_RELATED_RESOURCES:
        raise errors.InvalidArgument(
            "related",
            f"has more than {events.MAX_RELATED_RESOURCES} resources",
            reason="TOO_MANY_RELATED_RESOURCES",
        )
    for i, related in enumerate(event.related):
        if not related.get(events.RESOURCE_ID):
            raise errors.InvalidArgument(
                f"related[{i}]",
                "must have a non-empty 'prefect.resource.id' label",
                reason="MISSING_RESOURCE_ID",
            )
        if not related.get(events.RESOURCE_ROLE):
            raise errors.InvalidArgument(
                f"related[{i}]",
                "must have a non-empty 'prefect.resource.role' label",
                reason="MISSING_RESOURCE_ROLE",
            )
        if len(related) > events.MAX_LABELS_PER_RESOURCE:
            raise errors.InvalidArgument(
                f"related[{i}]",
                f"has more than {events.MAX_LABELS_PER_RESOURCE} labels",
                reason="TOO_MANY_LABELS",
            )
    if size is not None and size > max_size:
        raise errors.InvalidArgument(
            "", f"is {size} bytes, more than {max_size}", reason="EVENT_TOO_LARGE"
        )
    follows = event.follows
    if (
        len(event.id) > _SHORT_KEY
        or len(event.event) > _SHORT_KEY
        or len(resource_id) > _SHORT_KEY
        or (follows is not None and len(follows) > _SHORT_KEY)
    ):
        check_key_bytes(event)


def _nests_deeper(value: object, limit: int) -> bool:
    """Whether objects and lists nest more than ``limit`` deep in ``value`` (no recursion).

    Only plain dict payloads are walked: a payload still behind its ``Struct`` (from gRPC) was
    nested at most ~32 deep by protobuf's own parser.
    """
    stack: list[tuple[Collection[object], int]] = (
        [(value.values(), 1)] if isinstance(value, dict) else []
    )
    while stack:
        children, depth = stack.pop()
        for child in children:
            if isinstance(child, dict | list | tuple):
                if depth >= limit:
                    return True
                stack.append((child.values() if isinstance(child, dict) else child, depth + 1))
    return False


_SHORT_KEY = events.MAX_KEY_BYTES // 4
"""At most 4 UTF-8 bytes per character: a key this many characters long is surely short enough."""


def check_key_bytes(event: events.Event, *, prefix: str = "") -> None:
    """Raises InvalidArgument (KEY_TOO_LONG) when an indexed text is over ``MAX_KEY_BYTES``.

    Args:
        event: The event; its id, name, primary resource id and ``follows`` are checked.
        prefix: Put before the field name in the error (e.g. ``events[3].``).
    """
    for name, value in (
        ("id", event.id),
        ("event", event.event),
        ("resource", event.resource_id),
        ("follows", event.follows or ""),
    ):
        if len(value.encode("utf-8")) > events.MAX_KEY_BYTES:
            raise errors.InvalidArgument(
                prefix + name,
                f"is longer than {events.MAX_KEY_BYTES} bytes, too long to index",
                reason="KEY_TOO_LONG",
            )


_LOOPING_FLOW_RUN_EVENTS = frozenset(
    {
        "prefect.flow-run.Scheduled",
        "prefect.flow-run.Pending",
        "prefect.flow-run.Running",
        "prefect.flow-run.*",
    }
)


def _only_flow_runs(spec: Mapping[str, tuple[str, ...]]) -> bool:
    """True for an empty spec or one that only says "any flow run"."""
    return not spec or dict(spec) == {events.RESOURCE_ID: ("prefect.flow-run.*",)}


def check_run_deployment_loops(automation: automations.Automation) -> None:
    """Refuses an automation that would start a flow run every time a flow run starts.

    Prefect's ``prevent_run_deployment_loops``: an enabled, reactive event trigger expecting
    ``prefect.flow-run.Scheduled``, ``Pending``, ``Running`` or ``*`` together with a
    ``run-deployment`` action that is inferred, or selected while the trigger matches any flow run,
    would run the deployment, whose new flow run fires the trigger again, forever.

    Raises:
        errors.InvalidArgument: On such a combination (field ``trigger``).
    """
    trigger = automation.trigger
    if not automation.enabled or not isinstance(trigger, triggers.EventTrigger):
        return
    if trigger.posture is not triggers.Posture.REACTIVE:
        return
    if not _LOOPING_FLOW_RUN_EVENTS.intersection(trigger.expect):
        return
    any_run = _only_flow_runs(trigger.match) and all(
        _only_flow_runs(spec) for spec in trigger.match_related
    )
    for index, action in enumerate(automation.all_actions()):
        if action.type != "run-deployment":
            continue
        source = action.parameters.get("source") or "selected"
        if source == "inferred" or any_run:
            raise errors.InvalidArgument(
                "trigger",
                "running a deployment when any flow run is scheduled, pending or running would "
                f"start a new flow run from its own flow runs, forever (actions[{index}] is "
                f"{source} run-deployment); match a specific deployment or flow, or trigger on "
                "a terminal state such as prefect.flow-run.Completed",
                reason="RUN_DEPLOYMENT_LOOP",
            )
