"""Prefect's automation JSON is accepted as it is, and bad fields are named by their path."""

from __future__ import annotations

from typing import Any

import pytest

from automations.domain import errors, prefect_json, triggers


def automation(trigger: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "a", "trigger": trigger, "actions": [{"type": "do-nothing"}], **extra}


def field_of(data: dict[str, Any]) -> str:
    with pytest.raises(errors.InvalidArgument) as info:
        prefect_json.parse_automation(data)
    return info.value.field


def test_inspect_output_round_trips_with_ids_ignored() -> None:
    data = automation(
        {
            "type": "event",
            "posture": "Reactive",
            "match": {"prefect.resource.id": ["a.*", "b"]},
            "match_related": [{"prefect.resource.role": "tag"}],
            "expect": ["x"],
            "for_each": ["k"],
            "threshold": 2,
            "within": "PT1M",
        },
        id="9b3c",
        created="2026-01-01T00:00:00Z",
        updated="2026-01-01T00:00:00Z",
        tags=["t"],
    )
    parsed = prefect_json.parse_automation(data, automation_id="abc")
    dumped = prefect_json.dump_automation(parsed)
    again = prefect_json.parse_automation(dumped, automation_id="abc")
    assert again.trigger == parsed.trigger
    assert dumped["trigger"]["within"] == 60
    assert dumped["id"] == "abc"


@pytest.mark.parametrize(
    ("within", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("PT1H30M", 5400.0),
        ("P1DT1S", 86401.0),
        ("0:01:00", 60.0),
        ("1 day, 0:00:10", 86410.0),
        ("45", 45.0),
    ],
)
def test_durations_are_seconds_iso_8601_or_clock_strings(within: Any, seconds: float) -> None:
    parsed = prefect_json.parse_automation(automation({"type": "event", "within": within}))
    assert isinstance(parsed.trigger, triggers.EventTrigger)
    assert parsed.trigger.within == seconds


def test_proactive_within_zero_means_ten_seconds() -> None:
    parsed = prefect_json.parse_automation(automation({"posture": "Proactive", "within": 0}))
    assert isinstance(parsed.trigger, triggers.EventTrigger)
    assert parsed.trigger.within == 10.0


def test_proactive_within_below_ten_seconds_is_refused_with_the_path() -> None:
    trigger = {
        "type": "compound",
        "require": "any",
        "triggers": [{"expect": ["a"]}, {"posture": "Proactive", "within": 5}],
    }
    assert field_of(automation(trigger)) == "trigger.triggers[1].within"


def test_bad_duration_names_the_nested_field() -> None:
    trigger = {
        "type": "sequence",
        "triggers": [{"expect": ["a"]}, {"expect": ["b"], "within": "soon"}],
    }
    assert field_of(automation(trigger)) == "trigger.triggers[1].within"


def test_empty_compound_can_never_fire_and_is_refused() -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        prefect_json.parse_automation(
            automation({"type": "compound", "require": "all", "triggers": []})
        )
    assert info.value.reason == "TRIGGER_CAN_NEVER_FIRE"
    assert info.value.field == "trigger.triggers"


def test_require_beyond_the_children_is_refused() -> None:
    trigger = {"type": "compound", "require": 3, "triggers": [{"expect": ["a"]}, {"expect": ["b"]}]}
    assert field_of(automation(trigger)) == "trigger.require"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"trigger": {}, "actions": []}, "name"),
        ({"name": "a", "actions": []}, "trigger"),
        ({"name": "a", "trigger": {}}, "actions"),
        (automation({"threshold": -1}), "trigger.threshold"),
        (automation({"posture": "Sideways"}), "trigger.posture"),
        (automation({"within": None}), "trigger.within"),
        (automation({"thresold": 2}), "trigger.thresold"),
        (automation({"type": "metric"}), "trigger.metric"),
        (automation({"type": "gauge"}), "trigger.type"),
        ({"name": "a", "trigger": {}, "actions": [{"url": "x"}]}, "actions[0].type"),
    ],
)
def test_each_bad_field_is_named(data: dict[str, Any], field: str) -> None:
    assert field_of(data) == field


def test_unchanged_triggers_keep_their_ids_and_changed_ones_do_not() -> None:
    one = automation(
        {
            "type": "compound",
            "require": "any",
            "triggers": [{"expect": ["a"]}, {"expect": ["b"], "threshold": 2}],
        }
    )
    two = automation(
        {
            "type": "compound",
            "require": "any",
            "triggers": [{"expect": ["a"]}, {"expect": ["b"], "threshold": 3}],
        }
    )
    t1 = prefect_json.parse_automation(one).trigger
    t2 = prefect_json.parse_automation(two).trigger
    assert isinstance(t1, triggers.CompoundTrigger) and isinstance(t2, triggers.CompoundTrigger)
    assert t1.triggers[0].id == t2.triggers[0].id
    assert t1.triggers[1].id != t2.triggers[1].id
    assert t1.id != t2.id
