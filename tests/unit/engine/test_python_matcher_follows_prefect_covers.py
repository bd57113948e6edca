"""PythonMatcher: Prefect's covers, starts_after and expects, for names, labels and related."""

from __future__ import annotations

from typing import Any

import pytest

from automations.domain import events, prefect_json, triggers
from automations.engine.python_matcher import PythonMatcher


def trigger(**fields: Any) -> triggers.EventTrigger:
    parsed = prefect_json.parse_trigger({"type": "event", "posture": "Reactive", **fields})
    assert isinstance(parsed, triggers.EventTrigger)
    return parsed


def ev(name: str, resource: dict[str, str] | None = None, *related: dict[str, str]) -> events.Event:
    return events.Event(
        id="e",
        event=name,
        occurred=0.0,
        resource=resource or {"prefect.resource.id": "r"},
        related=tuple(related),
    )


def touches(t: triggers.EventTrigger, event: events.Event) -> list[tuple[bool, bool]]:
    matcher = PythonMatcher()
    matcher.load("a", [t])
    return [(touch.after, touch.expect) for touch in matcher.match_batch([event])[0]]


@pytest.mark.parametrize(
    ("pattern", "name", "covered"),
    [
        ("animal.*", "animal.walked", True),
        ("animal.*", "animal.", False),  # `*` needs at least one character
        ("animal.*ed", "animal.ed", False),
        ("animal.*ed", "animal.walked", True),
        ("animal.w?lked", "animal.walked", False),  # `?` is literal in names
        ("animal.[wx]alked", "animal.walked", False),
        ("animal.walked", "animal.walked", True),
        ("animal.walked", "animal.walkedx", False),
        ("Animal.walked", "animal.walked", False),  # case-sensitive
        ("!animal.walked", "animal.ran", False),  # negated names never reach the trigger
    ],
)
def test_event_name_patterns(pattern: str, name: str, covered: bool) -> None:
    assert bool(touches(trigger(expect=[pattern]), ev(name))) is covered


def test_empty_expect_covers_every_event_and_counts_it() -> None:
    assert touches(trigger(), ev("anything.at.all")) == [(False, True)]


def test_after_and_expect_flags() -> None:
    t = trigger(after=["run.started"], expect=["run.*"])
    assert touches(t, ev("run.started")) == [(True, True)]
    assert touches(t, ev("run.finished")) == [(False, True)]
    assert touches(t, ev("other")) == []


def test_with_after_but_empty_expect_every_event_is_covered() -> None:
    t = trigger(after=["run.started"])
    assert touches(t, ev("run.started")) == [(True, True)]
    assert touches(t, ev("unrelated")) == [(False, True)]


def test_a_glob_alternative_can_let_a_question_mark_count() -> None:
    # the index fnmatches `x?y`, the covers regex accepts `x.+`: Prefect then counts `xay`
    t = trigger(expect=["x?y", "x*"])
    assert touches(t, ev("xay")) == [(False, True)]


@pytest.mark.parametrize(
    ("spec", "labels", "covered"),
    [
        (
            {"prefect.resource.id": "prefect.flow-run.*"},
            {"prefect.resource.id": "prefect.flow-run.1"},
            True,
        ),
        ({"prefect.resource.id": "*.csv"}, {"prefect.resource.id": "s3://b/x.csv"}, True),
        ({"prefect.resource.id": "a?c"}, {"prefect.resource.id": "abc"}, True),
        ({"prefect.resource.id": "a[bx]c"}, {"prefect.resource.id": "axc"}, True),
        ({"prefect.resource.id": "A*"}, {"prefect.resource.id": "abc"}, False),
        ({"env": "!prod"}, {"prefect.resource.id": "r"}, False),  # missing label never matches
        ({"env": "!prod"}, {"prefect.resource.id": "r", "env": "dev"}, True),
        ({"env": ["!a", "!b"]}, {"prefect.resource.id": "r", "env": "a"}, True),  # ORed
        ({"env": ["dev", "test"]}, {"prefect.resource.id": "r", "env": "test"}, True),
        ({"env": "dev", "tier": "web"}, {"prefect.resource.id": "r", "env": "dev"}, False),
        ({"env": []}, {"prefect.resource.id": "r", "env": "dev"}, False),
        ({}, {"prefect.resource.id": "r"}, True),
    ],
)
def test_match_on_the_primary_resource(
    spec: dict[str, Any], labels: dict[str, str], covered: bool
) -> None:
    assert bool(touches(trigger(expect=["x"], match=spec), ev("x", labels))) is covered


FLOW = {"prefect.resource.id": "prefect.flow.f1", "prefect.resource.role": "flow"}
TAG_PROD = {"prefect.resource.id": "prefect.tag.prod", "prefect.resource.role": "tag"}
TAG_DEV = {"prefect.resource.id": "prefect.tag.dev", "prefect.resource.role": "tag"}


def test_match_related_dict_needs_one_resource_satisfying_every_label() -> None:
    t = trigger(
        expect=["x"],
        match_related={"prefect.resource.role": "tag", "prefect.resource.id": "prefect.flow.*"},
    )
    assert touches(t, ev("x", None, FLOW, TAG_PROD)) == []
    t = trigger(
        expect=["x"],
        match_related={"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.prod"},
    )
    assert touches(t, ev("x", None, FLOW, TAG_PROD)) == [(False, True)]


def test_match_related_list_needs_every_spec() -> None:
    t = trigger(
        expect=["x"],
        match_related=[
            {"prefect.resource.id": "prefect.tag.prod"},
            {"prefect.resource.id": "prefect.tag.dev"},
        ],
    )
    assert touches(t, ev("x", None, TAG_PROD, TAG_DEV)) == [(False, True)]
    assert touches(t, ev("x", None, TAG_PROD)) == []


def test_negation_on_a_many_valued_role_means_some_other_value() -> None:
    t = trigger(
        expect=["x"],
        match_related={"prefect.resource.id": "!prefect.tag.dev", "prefect.resource.role": "tag"},
    )
    assert touches(t, ev("x", None, TAG_DEV, TAG_PROD)) == [(False, True)]
    assert touches(t, ev("x", None, TAG_DEV)) == []


def test_an_empty_related_spec_matches_events_without_related_resources() -> None:
    assert touches(trigger(expect=["x"], match_related={}), ev("x")) == [(False, True)]
    assert touches(trigger(expect=["x"], match_related=[{}]), ev("x")) == [(False, True)]


def test_touches_follow_load_order_and_unload_removes() -> None:
    matcher = PythonMatcher()
    first, second = trigger(expect=["x"]), trigger(expect=["x*"])
    matcher.load("b", [second])
    matcher.load("a", [first])
    assert [t.automation_id for t in matcher.match_batch([ev("x")])[0]] == ["a"]
    assert [t.automation_id for t in matcher.match_batch([ev("xy")])[0]] == ["b"]
    matcher.load("b", [first])  # an update keeps the load position
    assert [t.automation_id for t in matcher.match_batch([ev("x")])[0]] == ["b", "a"]
    matcher.unload("b")
    assert [t.automation_id for t in matcher.match_batch([ev("x")])[0]] == ["a"]
