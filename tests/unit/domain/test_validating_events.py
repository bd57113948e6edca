"""Events are checked against Prefect's limits, each failure naming its field."""

from __future__ import annotations

import pytest

from automations.domain import errors, events, validation


def event(**kw: object) -> events.Event:
    base: dict[str, object] = {
        "id": "e1",
        "event": "x.y",
        "occurred": 0.0,
        "resource": {"prefect.resource.id": "r"},
    }
    base.update(kw)
    return events.Event(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ev", "reason", "field"),
    [
        (event(resource={}), "MISSING_RESOURCE_ID", "resource"),
        (event(event="x" * 1025), "EVENT_NAME_TOO_LONG", "event"),
        (event(id="i" * 2001), "KEY_TOO_LONG", "id"),
        (event(event="é" * 1001), "KEY_TOO_LONG", "event"),  # 1,001 characters, 2,002 bytes
        (event(resource={"prefect.resource.id": "€" * 667}), "KEY_TOO_LONG", "resource"),
        (event(follows="f" * 2001), "KEY_TOO_LONG", "follows"),
        (event(related=({"prefect.resource.id": "a"},)), "MISSING_RESOURCE_ROLE", "related[0]"),
        (event(related=({"prefect.resource.role": "a"},)), "MISSING_RESOURCE_ID", "related[0]"),
        (
            event(
                related=tuple(
                    {"prefect.resource.id": "a", "prefect.resource.role": "r"} for _ in range(101)
                )
            ),
            "TOO_MANY_RELATED_RESOURCES",
            "related",
        ),
        (
            event(resource={"prefect.resource.id": "r", **{f"l{i}": "v" for i in range(500)}}),
            "TOO_MANY_LABELS",
            "resource",
        ),
    ],
)
def test_limits_are_enforced(ev: events.Event, reason: str, field: str) -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        validation.validate_event(ev)
    assert (info.value.reason, info.value.field) == (reason, field)


def test_oversized_events_are_refused() -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        validation.validate_event(event(), max_size=100, size=101)
    assert info.value.reason == "EVENT_TOO_LARGE"


def test_a_valid_event_passes() -> None:
    validation.validate_event(
        event(related=({"prefect.resource.id": "a", "prefect.resource.role": "r"},))
    )


def test_keys_of_exactly_the_index_limit_pass() -> None:
    validation.validate_event(event(id="i" * 2000, resource={"prefect.resource.id": "€" * 666}))
