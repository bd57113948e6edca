"""Automation proto <-> Prefect JSON <-> domain: every trigger field, durations, error paths."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import duration_pb2

from automations.domain import errors, prefect_json, triggers
from automations.v1 import automation_pb2
from automations.wire import automations as wire_automations
from automations.wire import names, structs

# A deployment that should run nightly: every field of every trigger kind, nested.
NIGHTLY_WATCH: dict[str, Any] = {
    "name": "nightly watch",
    "description": "Page when the nightly run misbehaves",
    "enabled": False,
    "tags": ["ops", "nightly"],
    "trigger": {
        "type": "compound",
        "require": 2,
        "within": 3600,
        "triggers": [
            {
                "type": "event",
                "match": {"prefect.resource.id": ["prefect.flow-run.*", "prefect.task-run.*"]},
                "match_related": [
                    {"prefect.resource.role": "flow", "prefect.resource.name": "nightly"},
                    {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.prod"},
                ],
                "after": ["prefect.flow-run.Running"],
                "expect": ["prefect.flow-run.Completed", "prefect.flow-run.Failed"],
                "for_each": ["prefect.resource.id", "related:flow:prefect.resource.name"],
                "posture": "Proactive",
                "threshold": 1,
                "within": 1800.5,
            },
            {
                "type": "sequence",
                "within": None,
                "triggers": [
                    {"type": "event", "expect": ["deploy.started"]},
                    {"type": "event", "expect": ["deploy.failed"], "threshold": 0},
                ],
            },
            {
                "type": "compound",
                "require": "any",
                "within": 0.25,
                "triggers": [
                    {
                        "type": "event",
                        "match_related": {"prefect.resource.role": "tag"},
                        "threshold": 3,
                        "within": 60,
                    }
                ],
            },
        ],
    },
    "actions": [
        {
            "type": "call-webhook",
            "url": "https://example.com/hook",
            "method": "POST",
            "headers": {"X-Team": "ops"},
            "payload": "{{ event.event }} on {{ event.resource.id }}",
        },
        {"type": "acme.page-oncall", "severity": 2, "escalate": True, "ratio": 0.5},
    ],
    "actions_on_trigger": [{"type": "do-nothing"}],
    "actions_on_resolve": [{"type": "send-notification", "url": "json://x", "body": "ok"}],
    "owner_resource": "prefect.deployment.0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
}


def _parse(data: dict[str, Any]) -> Any:
    return wire_automations.automation_from_prefect_json(
        data, automation_id="nightly", created=1_700_000_000.0, updated=1_700_000_100.5
    )


def test_domain_to_proto_to_prefect_json_is_prefects_own_dump() -> None:
    automation = _parse(NIGHTLY_WATCH)
    message = wire_automations.automation_to_proto(automation)
    assert wire_automations.automation_to_prefect_json(message) == prefect_json.dump_automation(
        automation
    )


def test_prefect_json_to_proto_and_back_validates_to_the_same_automation() -> None:
    message = wire_automations.automation_proto_from_prefect_json(NIGHTLY_WATCH)
    automation = wire_automations.automation_from_proto(
        message, automation_id="nightly", created=1_700_000_000.0, updated=1_700_000_100.5
    )
    assert automation == _parse(NIGHTLY_WATCH)


def test_the_resource_fields_follow_the_aips() -> None:
    message = wire_automations.automation_to_proto(_parse(NIGHTLY_WATCH))
    assert message.name == "automations/nightly"
    assert message.uid == "nightly"
    assert message.display_name == "nightly watch"
    assert message.HasField("enabled") and message.enabled is False
    assert structs.timestamp_to_seconds(message.create_time) == 1_700_000_000.0
    assert structs.timestamp_to_seconds(message.update_time) == 1_700_000_100.5
    assert message.etag == "1"
    assert message.owner_resource.startswith("prefect.deployment.")
    printed = wire_automations.automation_to_prefect_json(message)
    assert (printed["id"], printed["created"], printed["updated"]) == (
        "nightly",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:15:00.500000Z",
    )


def test_every_event_trigger_field_reaches_the_proto() -> None:
    message = wire_automations.automation_to_proto(_parse(NIGHTLY_WATCH))
    compound = message.trigger.compound
    assert compound.require_count == 2
    assert compound.within == duration_pb2.Duration(seconds=3600)
    event = compound.triggers[0].event
    assert list(event.match.labels["prefect.resource.id"].patterns) == [
        "prefect.flow-run.*",
        "prefect.task-run.*",
    ]
    assert [dict(spec.labels) and sorted(spec.labels) for spec in event.match_related] == [
        ["prefect.resource.name", "prefect.resource.role"],
        ["prefect.resource.id", "prefect.resource.role"],
    ]
    assert list(event.match_related[1].labels["prefect.resource.id"].patterns) == [
        "prefect.tag.prod"
    ]
    assert list(event.after) == ["prefect.flow-run.Running"]
    assert list(event.expect) == ["prefect.flow-run.Completed", "prefect.flow-run.Failed"]
    assert list(event.for_each) == ["prefect.resource.id", "related:flow:prefect.resource.name"]
    assert event.posture == automation_pb2.POSTURE_PROACTIVE
    assert event.threshold == 1
    assert event.within == duration_pb2.Duration(seconds=1800, nanos=500_000_000)


def test_composite_fields_reach_the_proto() -> None:
    message = wire_automations.automation_to_proto(_parse(NIGHTLY_WATCH))
    sequence = message.trigger.compound.triggers[1].sequence
    assert not sequence.HasField("within")
    assert sequence.triggers[1].event.HasField("threshold")
    assert sequence.triggers[1].event.threshold == 0
    nested = message.trigger.compound.triggers[2].compound
    assert nested.WhichOneof("require") == "require_any"
    assert nested.within == duration_pb2.Duration(nanos=250_000_000)


def test_trigger_ids_are_output_and_ignored_on_input() -> None:
    message = wire_automations.automation_to_proto(_parse(NIGHTLY_WATCH))
    ids = {message.trigger.id, message.trigger.compound.triggers[0].id}
    assert all(len(i) == 24 for i in ids)
    message.trigger.id = "forged"
    again = wire_automations.automation_from_proto(message, automation_id="nightly")
    assert again.trigger.id in ids


def test_action_parameters_keep_prefects_names_and_integers() -> None:
    message = wire_automations.automation_to_proto(_parse(NIGHTLY_WATCH))
    page = message.actions[1]
    assert page.type == "acme.page-oncall"
    assert structs.struct_to_dict(page.parameters) == {
        "severity": 2,
        "escalate": True,
        "ratio": 0.5,
    }
    printed = wire_automations.automation_to_prefect_json(message)
    assert printed["actions"][0]["headers"] == {"X-Team": "ops"}
    assert printed["actions_on_trigger"] == [{"type": "do-nothing"}]


def _minimal(**trigger: Any) -> automation_pb2.Automation:
    message = automation_pb2.Automation(display_name="x")
    message.actions.add(type="do-nothing")
    message.trigger.event.SetInParent()
    for key, value in trigger.items():
        setattr(message.trigger.event, key, value)
    return message


def test_unset_proto_fields_take_prefects_defaults() -> None:
    automation = wire_automations.automation_from_proto(_minimal())
    assert automation.enabled is True
    assert automation.description == ""
    trigger = automation.trigger
    assert isinstance(trigger, triggers.EventTrigger)
    assert trigger.posture is triggers.Posture.REACTIVE
    assert (trigger.threshold, trigger.within) == (1, 0.0)
    assert (trigger.match, trigger.match_related, trigger.expect) == ({}, (), ())


def test_an_unset_proactive_within_means_ten_seconds() -> None:
    automation = wire_automations.automation_from_proto(
        _minimal(posture=automation_pb2.POSTURE_PROACTIVE)
    )
    assert isinstance(automation.trigger, triggers.EventTrigger)
    assert automation.trigger.within == 10.0


def test_an_unset_composite_within_means_no_limit() -> None:
    message = _minimal()
    message.trigger.sequence.triggers.add().event.expect.append("a")
    automation = wire_automations.automation_from_proto(message)
    assert isinstance(automation.trigger, triggers.SequenceTrigger)
    assert automation.trigger.within is None


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("require_any", True, "any"), ("require_all", True, "all"), ("require_count", 1, 1)],
)
def test_each_require_form_maps_to_prefects(field: str, value: Any, expected: Any) -> None:
    message = _minimal()
    compound = message.trigger.compound
    compound.triggers.add().event.expect.append("a")
    setattr(compound, field, value)
    automation = wire_automations.automation_from_proto(message)
    assert isinstance(automation.trigger, triggers.CompoundTrigger)
    assert automation.trigger.require == expected


def test_no_require_means_all() -> None:
    message = _minimal()
    message.trigger.compound.triggers.add().event.expect.append("a")
    automation = wire_automations.automation_from_proto(message)
    assert isinstance(automation.trigger, triggers.CompoundTrigger)
    assert automation.trigger.require == "all"


# ------------------------------------------------------------------------------------ error paths


def _error(message: automation_pb2.Automation) -> errors.InvalidArgument:
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_automations.automation_from_proto(message)
    return caught.value


def _compound_of_two() -> automation_pb2.Automation:
    message = _minimal()
    compound = message.trigger.compound
    compound.triggers.add().event.expect.append("a")
    compound.triggers.add().event.expect.append("b")
    return message


def test_a_missing_trigger_is_named() -> None:
    message = automation_pb2.Automation(display_name="x")
    assert _error(message).field == "trigger"


def test_a_trigger_of_no_kind_is_named_by_its_path() -> None:
    message = _compound_of_two()
    message.trigger.compound.triggers[1].Clear()
    error = _error(message)
    assert error.field == "trigger.triggers[1]"
    assert "event, compound, sequence or metric" in error.description


def test_a_negative_child_within_is_named_by_its_prefect_path() -> None:
    message = _compound_of_two()
    message.trigger.compound.triggers[1].event.within.seconds = -5
    error = _error(message)
    assert error.field == "trigger.triggers[1].within"


def test_a_short_proactive_window_is_rejected() -> None:
    message = _minimal(posture=automation_pb2.POSTURE_PROACTIVE)
    message.trigger.event.within.seconds = 5
    assert _error(message).field == "trigger.within"


def test_a_negative_threshold_is_rejected() -> None:
    assert _error(_minimal(threshold=-1)).field == "trigger.threshold"


def test_an_unknown_posture_number_is_rejected() -> None:
    assert _error(_minimal(posture=7)).field == "trigger.posture"


def test_require_count_beyond_the_children_can_never_fire() -> None:
    message = _compound_of_two()
    message.trigger.compound.require_count = 3
    error = _error(message)
    assert (error.field, error.reason) == ("trigger.require", "TRIGGER_CAN_NEVER_FIRE")


def test_require_any_false_is_rejected() -> None:
    message = _compound_of_two()
    message.trigger.compound.require_any = False
    assert _error(message).field == "trigger.require"


def test_a_composite_without_children_can_never_fire() -> None:
    message = _minimal()
    message.trigger.sequence.SetInParent()
    error = _error(message)
    assert (error.field, error.reason) == ("trigger.triggers", "TRIGGER_CAN_NEVER_FIRE")


def test_a_missing_display_name_is_named_display_name() -> None:
    message = _minimal()
    message.display_name = " "
    assert _error(message).field == "display_name"


def test_an_action_without_type_is_named() -> None:
    message = _minimal()
    message.actions_on_trigger.add()
    assert _error(message).field == "actions_on_trigger[0].type"


def test_parameters_may_not_smuggle_a_type() -> None:
    message = _minimal()
    message.actions[0].parameters.update({"type": "call-webhook"})
    assert _error(message).field == "actions[0].parameters"


def test_a_bad_prefect_file_fails_before_it_is_sent() -> None:
    bad = {**NIGHTLY_WATCH, "trigger": {"type": "event", "within": "soon"}}
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_automations.automation_proto_from_prefect_json(bad)
    assert (caught.value.field, caught.value.reason) == ("trigger.within", "BAD_DURATION")


def test_iso_durations_in_a_file_become_proto_durations() -> None:
    data = {**NIGHTLY_WATCH, "trigger": {"type": "event", "within": "PT1H30M"}}
    message = wire_automations.automation_proto_from_prefect_json(data)
    assert message.trigger.event.within == duration_pb2.Duration(seconds=5400)
    assert wire_automations.automation_to_prefect_json(message)["trigger"]["within"] == 5400


def test_an_id_in_a_file_becomes_the_resource_name() -> None:
    message = wire_automations.automation_proto_from_prefect_json({**NIGHTLY_WATCH, "id": "abc"})
    assert (message.name, message.uid, message.etag) == ("automations/abc", "abc", "")


# --------------------------------------------------------------------------------- resource names


def test_resource_names_parse_and_print() -> None:
    assert names.automation_name("abc") == "automations/abc"
    assert names.automation_id_from_name("automations/abc") == "abc"
    assert names.firing_name("a", "f") == "automations/a/firings/f"


@pytest.mark.parametrize("bad", ["", "abc", "automations/", "automations/a/b", "flows/abc"])
def test_malformed_resource_names_are_rejected(bad: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        names.automation_id_from_name(bad)
    assert (caught.value.field, caught.value.reason) == ("name", "INVALID_RESOURCE_NAME")
