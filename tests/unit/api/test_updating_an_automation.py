"""UpdateAutomation's field mask: what changes, and which trigger state survives."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import field_mask_pb2

from automations.domain import errors, triggers
from automations.v1 import automation_pb2
from automations.wire import automations as wire_automations

HEARTBEAT: dict[str, Any] = {
    "name": "heartbeats",
    "description": "worker heartbeats",
    "tags": ["ops"],
    "trigger": {
        "type": "compound",
        "require": "all",
        "within": 60,
        "triggers": [
            {"type": "event", "expect": ["worker.heartbeat"], "posture": "Proactive", "within": 90},
            {"type": "event", "expect": ["worker.crashed"]},
        ],
    },
    "actions": [{"type": "do-nothing"}],
    "owner_resource": "prefect.deployment.1",
}


@pytest.fixture
def heartbeats() -> Any:
    return wire_automations.automation_from_prefect_json(
        HEARTBEAT, automation_id="hb", created=100.0, updated=100.0
    )


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def test_only_the_masked_fields_change(heartbeats: Any) -> None:
    patch = automation_pb2.Automation(display_name="renamed", description="ignored")
    updated = wire_automations.apply_update(heartbeats, patch, _mask("display_name"), updated=200.0)
    assert updated.name == "renamed"
    assert updated.description == "worker heartbeats"
    assert updated.trigger == heartbeats.trigger
    assert (updated.id, updated.created, updated.updated) == ("hb", 100.0, 200.0)
    assert updated.version == heartbeats.version + 1
    assert updated.owner_resource == "prefect.deployment.1"


def test_an_empty_mask_means_the_fields_set_in_the_patch(heartbeats: Any) -> None:
    patch = automation_pb2.Automation(enabled=False, tags=["ops", "paging"])
    updated = wire_automations.apply_update(heartbeats, patch, None, updated=200.0)
    assert updated.enabled is False
    assert updated.tags == ("ops", "paging")
    assert updated.name == "heartbeats"
    assert updated.trigger == heartbeats.trigger


def test_a_star_mask_replaces_everything(heartbeats: Any) -> None:
    patch = wire_automations.automation_to_proto(heartbeats)
    patch.ClearField("description")
    patch.ClearField("tags")
    updated = wire_automations.apply_update(heartbeats, patch, _mask("*"), updated=200.0)
    assert (updated.description, updated.tags) == ("", ())


def test_a_masked_field_left_unset_is_cleared(heartbeats: Any) -> None:
    updated = wire_automations.apply_update(
        heartbeats, automation_pb2.Automation(), _mask("tags", "description"), updated=200.0
    )
    assert (updated.description, updated.tags) == ("", ())


def test_a_masked_trigger_left_unset_is_an_error(heartbeats: Any) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_automations.apply_update(
            heartbeats, automation_pb2.Automation(), _mask("trigger"), updated=2
        )
    assert caught.value.field == "trigger"


def test_an_unchanged_trigger_keeps_its_id_and_a_changed_one_gets_a_new_one(
    heartbeats: Any,
) -> None:
    patch = wire_automations.automation_to_proto(heartbeats)
    patch.trigger.compound.triggers[1].event.threshold = 2
    updated = wire_automations.apply_update(heartbeats, patch, _mask("trigger"), updated=200.0)
    before = triggers.iter_triggers(heartbeats.trigger)
    after = triggers.iter_triggers(updated.trigger)
    assert after[1].id == before[1].id  # the heartbeat window keeps its state
    assert after[2].id != before[2].id  # the changed child starts from nothing
    assert after[0].id != before[0].id  # and so does the parent that contains it


@pytest.mark.parametrize(
    "paths", [("name",), ("create_time",), ("owner_resource",), ("trigger.event",), ("*", "tags")]
)
def test_paths_that_cannot_be_updated_are_rejected(heartbeats: Any, paths: tuple[str]) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_automations.apply_update(
            heartbeats, automation_pb2.Automation(), _mask(*paths), updated=2
        )
    assert (caught.value.field, caught.value.reason) == ("update_mask", "INVALID_UPDATE_MASK")


def test_an_invalid_result_names_the_field(heartbeats: Any) -> None:
    patch = wire_automations.automation_to_proto(heartbeats)
    patch.trigger.compound.triggers[0].event.within.seconds = 3
    with pytest.raises(errors.InvalidArgument) as caught:
        wire_automations.apply_update(heartbeats, patch, _mask("trigger"), updated=2)
    assert caught.value.field == "trigger.triggers[0].within"
