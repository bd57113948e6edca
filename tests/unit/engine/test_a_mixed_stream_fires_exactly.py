"""The mixed stream of ``bench.engine_mix`` fires exactly what Prefect's semantics say.

The workload (20 automations, 30,000 events) is the benchmark's; its speed is measured there,
never asserted here. The stream spans 30 s of event time, less than every window (60 s, 300 s,
600 s), so every firing follows from the events alone:

* reactive, threshold 3 per resource: a resource's first window runs to its first event + 60 s,
  so it fires once, at its third event; later events fall in that spent window (the next one
  starts when it ends) and never fire again within the stream;
* reactive with ``within: 0`` and a ``match_related`` tag: every Failed flow run with the tag;
* nothing else: no proactive window ends, ``deploy.*`` and ``svc.8|12|16.failed`` never occur.
"""

from __future__ import annotations

import collections

import pytest

from automations.domain import events, firings
from automations.engine import python_matcher
from bench import engine_mix

RID = "prefect.resource.id"
EVENTS = engine_mix.stream(30_000)


@pytest.fixture(scope="module")
def fired() -> list[firings.Firing]:
    return engine_mix.run(engine_mix.engine(python_matcher.PythonMatcher()), EVENTS)


def third_events_per_resource(name: str) -> list[events.Event]:
    seen: collections.Counter[str] = collections.Counter()
    out = []
    for event in EVENTS:
        if event.event == name:
            seen[event.resource[RID]] += 1
            if seen[event.resource[RID]] == 3:
                out.append(event)
    return out


def failed_runs_tagged(tag: str) -> list[events.Event]:
    return [
        e
        for e in EVENTS
        if e.event == "prefect.flow-run.Failed" and e.related[0][RID] == f"prefect.tag.{tag}"
    ]


def of(fired: list[firings.Firing], automation_id: str) -> list[firings.Firing]:
    return [f for f in fired if f.automation_id == automation_id]


@pytest.mark.parametrize("i", [0, 4])
def test_a_reactive_threshold_fires_once_per_resource_at_its_third_event(
    fired: list[firings.Firing], i: int
) -> None:
    expected = third_events_per_resource(f"svc.{i}.failed")
    got = of(fired, f"a{i}")
    assert [f.triggering_event_id for f in got] == [e.id for e in expected]
    assert [dict(f.triggering_labels) for f in got] == [{RID: e.resource[RID]} for e in expected]
    assert len(expected) > 200  # the workload does exercise it


@pytest.mark.parametrize("i", [2, 6, 10, 14, 18])
def test_a_related_tag_filter_fires_on_every_failed_run_with_that_tag(
    fired: list[firings.Firing], i: int
) -> None:
    expected = failed_runs_tagged(f"t{i}")
    assert [f.triggering_event_id for f in of(fired, f"a{i}")] == [e.id for e in expected]
    assert len(expected) > 100


def test_nothing_else_fires_while_no_window_ends(fired: list[firings.Firing]) -> None:
    expected = sum(len(third_events_per_resource(f"svc.{i}.failed")) for i in (0, 4)) + sum(
        len(failed_runs_tagged(f"t{i}")) for i in (2, 6, 10, 14, 18)
    )
    assert len(fired) == expected
    assert {f.automation_id for f in fired} == {"a0", "a4", "a2", "a6", "a10", "a14", "a18"}
    assert [f.triggered for f in fired] == [_batch_end(f).occurred for f in fired]  # at `now`


def _batch_end(firing: firings.Firing) -> events.Event:
    """The last event of the 500-event batch that carried the firing's triggering event."""
    assert firing.triggering_event_id is not None
    index = int(firing.triggering_event_id[1:])
    return EVENTS[min(len(EVENTS), (index // 500 + 1) * 500) - 1]


def test_the_rete_matcher_fires_the_same(fired: list[firings.Firing]) -> None:
    runtime = pytest.importorskip("automations.engine.rete.runtime")
    on_rete = engine_mix.run(engine_mix.engine(runtime.ReteMatcher()), EVENTS)
    assert on_rete == fired
