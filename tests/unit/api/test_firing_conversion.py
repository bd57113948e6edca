"""Firing domain -> proto: a sequence completes after a deploy fails."""

from __future__ import annotations

from automations.domain import events, firings
from automations.v1 import automation_pb2, firing_pb2
from automations.wire import events as wire_events
from automations.wire import firings as wire_firings
from automations.wire import structs

DEPLOY_FAILED = events.Event(
    id="deploy-failed-1",
    event="deploy.failed",
    occurred=1_000.5,
    resource={"prefect.resource.id": "svc.alpha"},
    received=1_001.0,
)


def _sequence_firing() -> firings.Firing:
    child = firings.Firing(
        id="f-child",
        automation_id="deploys",
        trigger_id="child-trigger",
        trigger_type="event",
        posture="Reactive",
        triggered=1_001.0,
        triggering_event=DEPLOY_FAILED,
        triggering_labels={"prefect.resource.id": "svc.alpha"},
    )
    return firings.Firing(
        id="f-parent",
        automation_id="deploys",
        trigger_id="parent-trigger",
        trigger_type="sequence",
        posture=None,
        triggered=1_001.0,
        triggering_event=DEPLOY_FAILED,
        child_firings=(child,),
    )


def test_a_stored_firing_has_a_resource_name_and_its_children_do_not() -> None:
    message = wire_firings.firing_to_proto(_sequence_firing())
    assert message.name == "automations/deploys/firings/f-parent"
    assert message.uid == "f-parent"
    assert message.automation == "automations/deploys"
    assert message.child_firings[0].name == ""
    assert message.child_firings[0].uid == "f-child"


def test_every_field_reaches_the_proto() -> None:
    message = wire_firings.firing_to_proto(_sequence_firing())
    assert message.trigger_id == "parent-trigger"
    assert message.trigger_type == firing_pb2.TRIGGER_TYPE_SEQUENCE
    assert message.posture == automation_pb2.POSTURE_UNSPECIFIED
    assert structs.timestamp_to_seconds(message.fire_time) == 1_001.0
    assert message.triggering_event_id == "deploy-failed-1"
    assert message.triggering_event == wire_events.event_to_proto(DEPLOY_FAILED)
    assert dict(message.triggering_labels) == {}
    child = message.child_firings[0]
    assert child.trigger_type == firing_pb2.TRIGGER_TYPE_EVENT
    assert child.posture == automation_pb2.POSTURE_REACTIVE
    assert dict(child.triggering_labels) == {"prefect.resource.id": "svc.alpha"}


def test_a_proactive_firing_without_an_event_has_none() -> None:
    silent = firings.Firing(
        id="f1",
        automation_id="hb",
        trigger_id="t",
        trigger_type="event",
        posture="Proactive",
        triggered=90.0,
        triggering_event=None,
    )
    message = wire_firings.firing_to_proto(silent, stored=False)
    assert message.name == ""
    assert message.posture == automation_pb2.POSTURE_PROACTIVE
    assert message.triggering_event_id == ""
    assert not message.HasField("triggering_event")
