"""The one codec for stored events and firings: every value round-trips, old shapes still read."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from automations.domain import codec, events, firings

TEXT = st.text(max_size=12)
JSON_LEAF = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT
JSON = st.recursive(
    JSON_LEAF | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)
LABELS = st.dictionaries(TEXT, TEXT, max_size=4)
TIMES = st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False)


@st.composite
def an_event(draw: st.DrawFn) -> events.Event:
    return events.Event(
        id=draw(TEXT),
        event=draw(TEXT),
        occurred=draw(TIMES),
        resource={"prefect.resource.id": draw(TEXT), **draw(LABELS)},
        related=tuple(draw(st.lists(LABELS, max_size=3))),
        payload=draw(st.dictionaries(TEXT, JSON, max_size=4)),
        follows=draw(st.none() | TEXT),
        received=draw(TIMES),
    )


def a_firing(depth: int = 2) -> st.SearchStrategy[firings.Firing]:
    children = st.just(()) if depth == 0 else st.lists(a_firing(depth - 1), max_size=2).map(tuple)
    return st.builds(
        firings.Firing,
        id=TEXT,
        automation_id=TEXT,
        trigger_id=TEXT,
        trigger_type=st.sampled_from(["event", "compound", "sequence", "metric"]),
        posture=st.sampled_from([None, "Reactive", "Proactive", "Metric"]),
        triggered=TIMES,
        triggering_event=st.none() | an_event(),
        triggering_labels=LABELS,
        child_firings=children,
        state=st.sampled_from(list(firings.FiringState)),
        triggering_value=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    )


@given(an_event())
def test_every_event_round_trips_through_json(event: events.Event) -> None:
    assert codec.event_from_json(codec.event_to_json(event)) == event


@given(a_firing())
def test_every_firing_round_trips_through_json(firing: firings.Firing) -> None:
    stored = codec.dumps(codec.firing_to_data(firing))
    assert codec.firing_from_data(orjson.loads(stored)) == firing


def test_events_written_with_every_key_by_the_first_firing_history_still_read() -> None:
    """The first firing history wrote every key, empty or not; the engine's state left them out."""
    old = {
        "id": "e1",
        "event": "x",
        "occurred": 10,
        "received": 0.0,
        "resource": {"prefect.resource.id": "r"},
        "related": [],
        "payload": {},
        "follows": None,
    }
    assert codec.event_from_data(old) == events.Event(
        id="e1", event="x", occurred=10.0, resource={"prefect.resource.id": "r"}
    )
    assert codec.event_to_data(codec.event_from_data(old)) == {
        "id": "e1",
        "event": "x",
        "occurred": 10.0,
        "resource": {"prefect.resource.id": "r"},
    }


def test_a_firing_stored_before_states_existed_reads_back_triggered_without_a_value() -> None:
    old = {
        "id": "f1",
        "automation_id": "a",
        "trigger_id": "t",
        "trigger_type": "event",
        "posture": "Reactive",
        "triggered": 1.5,
        "triggering_event": None,
        "triggering_labels": {},
        "child_firings": [],
    }
    firing = codec.firing_from_data(old)
    assert (firing.state, firing.triggering_value) == (firings.FiringState.TRIGGERED, None)
    assert codec.firing_to_data(firing) == old  # and a Triggered firing is written as before


def test_mappings_and_tuples_from_other_layers_encode_as_json() -> None:
    class Labels(dict[str, str]):
        pass

    assert orjson.loads(codec.dumps({"a": Labels(x="1"), "b": ("y", frozenset())})) == {
        "a": {"x": "1"},
        "b": ["y", []],
    }
    assert codec.dumps(b'{"kept":1}') == b'{"kept":1}'
