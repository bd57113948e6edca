"""Checks an event against Prefect's limits before it is accepted."""

from __future__ import annotations

from automations.domain import errors, events


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
    if not event.resource.get(events.RESOURCE_ID):
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
