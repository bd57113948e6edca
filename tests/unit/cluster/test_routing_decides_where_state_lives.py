"""Events go to the raw partition of their resource; trigger state to its routing class's partition."""

from __future__ import annotations

import collections

import pytest

from automations.cluster import routing
from automations.engine import matching
from tests.unit.engine.helpers import automation, event

Q = 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", 0x811C9DC5), ("a", 0xE40C292C), ("foobar", 0xBF9CF968)],
)
def test_the_hash_is_fnv_1a_32(text: str, expected: int) -> None:
    assert routing.fnv1a32(text) == expected


def test_resource_ids_spread_evenly_over_the_partitions() -> None:
    counts = collections.Counter(
        routing.raw_partition(f"prefect.flow-run.{k:08x}", Q) for k in range(32_000)
    )
    assert set(counts) == set(range(Q))
    assert max(counts.values()) / (32_000 / Q) < 1.15


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ({"type": "event", "expect": ["x"], "for_each": ["prefect.resource.id"]}, "aligned"),
        (
            {"type": "event", "expect": ["x"], "for_each": ["prefect.resource.id", "env"]},
            "aligned",
        ),
        (
            {"type": "event", "expect": ["x"], "for_each": ["related:flow:prefect.resource.id"]},
            "keyed",
        ),
        ({"type": "event", "expect": ["x"]}, "whole"),
        (
            {
                "type": "compound",
                "require": "all",
                "within": 60,
                "triggers": [
                    {"type": "event", "expect": ["a"], "for_each": ["prefect.resource.id"]},
                    {"type": "event", "expect": ["b"], "for_each": ["prefect.resource.id"]},
                ],
            },
            "whole",
        ),
    ],
)
def test_routing_classes(trigger: dict[str, object], expected: str) -> None:
    assert routing.routing_class(automation(trigger).trigger).value == expected


def _touch(router: routing.Router, aid: str, ev: object) -> int | None:
    trigger = router_automations[aid].trigger
    assert not isinstance(trigger, (list, tuple))
    return router.partition(
        matching.Touch(aid, trigger, after=False, expect=True),  # type: ignore[arg-type]
        ev,  # type: ignore[arg-type]
    )


router_automations = {
    "aligned": automation(
        {"type": "event", "expect": ["x"], "for_each": ["prefect.resource.id"]}, "aligned"
    ),
    "keyed": automation(
        {"type": "event", "expect": ["x"], "for_each": ["related:flow:prefect.resource.id"]},
        "keyed",
    ),
    "whole": automation({"type": "event", "expect": ["x"]}, "whole"),
}


def test_each_touch_is_evaluated_where_its_state_lives() -> None:
    router = routing.Router(Q)
    for a in router_automations.values():
        router.add(a)
    flow = ({"prefect.resource.id": "flow.1", "prefect.resource.role": "flow"},)
    evs = [event(f"e{k}", "x", 0, resource=f"run.{k}", related=flow) for k in range(50)]
    # aligned: where the event is (no hop)
    assert [_touch(router, "aligned", e) for e in evs] == [
        routing.event_partition(e, Q) for e in evs
    ]
    # keyed: one partition per key, whatever the resource
    assert {_touch(router, "keyed", e) for e in evs} == {
        routing.keyed_partition("keyed", ("flow.1",), Q)
    }
    # whole: its home
    assert {_touch(router, "whole", e) for e in evs} == {routing.home_partition("whole", Q)}
    assert len({routing.event_partition(e, Q) for e in evs}) > 10


def test_a_whole_automation_is_held_by_its_home_partition_only() -> None:
    router = routing.Router(Q)
    whole, aligned = router_automations["whole"], router_automations["aligned"]
    home = routing.home_partition("whole", Q)
    assert [p for p in range(Q) if router.loads_in(whole, p)] == [home]
    assert all(router.loads_in(aligned, p) for p in range(Q))


def test_a_forgotten_automation_is_routed_nowhere() -> None:
    router = routing.Router(Q)
    router.add(router_automations["whole"])
    router.remove("whole")
    assert _touch(router, "whole", event("e", "x", 0)) is None
