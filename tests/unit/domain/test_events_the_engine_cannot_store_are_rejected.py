"""Events the engine or the store could not handle are rejected alone, naming the field."""

from __future__ import annotations

import time

import pytest

from automations.domain import errors, events, validation


def event(**fields: object) -> events.Event:
    values: dict[str, object] = {
        "id": "e1",
        "event": "x",
        "occurred": time.time(),
        "resource": {"prefect.resource.id": "r"},
    }
    values.update(fields)
    return events.Event(**values)  # type: ignore[arg-type]


def nested(depth: int) -> dict[str, object]:
    payload: dict[str, object] = {}
    inner = payload
    for _ in range(depth - 1):
        inner["a"] = [{}]
        inner = inner["a"][0]  # type: ignore[index]
    return payload


@pytest.mark.parametrize(
    "occurred",
    [253402300800.0, 2.0**62, -(2.0**62), 9223372036854775807.0, -62135596801.0, float("nan")],
    ids=["year-10000", "2^62", "-2^62", "int64-max", "before-year-1", "nan"],
)
def test_an_occurred_time_outside_years_1_to_9999_is_rejected(occurred: float) -> None:
    with pytest.raises(errors.InvalidArgument) as raised:
        validation.validate_event(event(occurred=occurred))
    assert (raised.value.field, raised.value.reason) == ("occurred", "OCCURRED_OUT_OF_RANGE")


@pytest.mark.parametrize("occurred", [events.MIN_OCCURRED, 0.0, events.MAX_OCCURRED])
def test_the_first_and_last_representable_times_are_accepted(occurred: float) -> None:
    validation.validate_event(event(occurred=occurred))


def test_a_payload_nested_deeper_than_the_limit_is_rejected() -> None:
    # each level is an object inside a list: two containers per level
    validation.validate_event(event(payload=nested(events.MAX_PAYLOAD_DEPTH // 2)))
    with pytest.raises(errors.InvalidArgument) as raised:
        validation.validate_event(event(payload=nested(events.MAX_PAYLOAD_DEPTH // 2 + 1)))
    assert (raised.value.field, raised.value.reason) == ("payload", "PAYLOAD_TOO_DEEP")
