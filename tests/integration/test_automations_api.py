"""AutomationService against a real engine: CRUD, validation errors, masks, etags, firings."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from automations.v1 import (
    automation_service_pb2 as pb,
)
from automations.v1 import (
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations

pytestmark = pytest.mark.integration


def definition(**trigger: Any) -> dict[str, Any]:
    base = {
        "type": "event",
        "posture": "Reactive",
        "expect": ["order.failed"],
        "threshold": 2,
        "within": 60,
        "for_each": ["prefect.resource.id"],
    }
    base.update(trigger)
    return {"name": "orders failing", "trigger": base, "actions": [{"type": "do-nothing"}]}


def create(stub: automation_service_pb2_grpc.AutomationServiceStub, data: dict[str, Any]) -> Any:
    return stub.CreateAutomation(
        pb.CreateAutomationRequest(
            automation=wire_automations.automation_proto_from_prefect_json(data)
        )
    )


def error_details(exc: grpc.RpcError) -> tuple[str, list[str]]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    reason = ""
    fields: list[str] = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad):
            fields += [v.field for v in bad.field_violations]
    return reason, fields


def test_create_get_list_delete(automations_stub: Any) -> None:
    created = create(automations_stub, definition())
    assert created.name.startswith("automations/")
    assert created.display_name == "orders failing"
    assert created.create_time.seconds > 0
    got = automations_stub.GetAutomation(pb.GetAutomationRequest(name=created.name))
    assert got == created
    listed = automations_stub.ListAutomations(pb.ListAutomationsRequest())
    assert [a.name for a in listed.automations] == [created.name]
    automations_stub.DeleteAutomation(pb.DeleteAutomationRequest(name=created.name))
    with pytest.raises(grpc.RpcError) as info:
        automations_stub.GetAutomation(pb.GetAutomationRequest(name=created.name))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_unknown_ids_are_not_found(automations_stub: Any) -> None:
    name = f"automations/{uuid.uuid4()}"
    for call in (
        lambda: automations_stub.GetAutomation(pb.GetAutomationRequest(name=name)),
        lambda: automations_stub.DeleteAutomation(pb.DeleteAutomationRequest(name=name)),
        lambda: automations_stub.DisableAutomation(pb.DisableAutomationRequest(name=name)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_invalid_trigger_is_refused_with_reason_and_field_path_and_nothing_is_written(
    automations_stub: Any,
) -> None:
    good = {
        "name": "x",
        "actions": [],
        "trigger": {
            "type": "compound",
            "require": "all",
            "triggers": [{"expect": ["a"]}, {"posture": "Proactive", "within": 30}],
        },
    }
    message = wire_automations.automation_proto_from_prefect_json(good)
    message.trigger.compound.triggers[1].event.within.seconds = 3  # below Prefect's 10 s minimum
    with pytest.raises(grpc.RpcError) as info:
        automations_stub.CreateAutomation(pb.CreateAutomationRequest(automation=message))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, fields = error_details(info.value)
    assert reason == "INVALID_AUTOMATION"
    assert fields == ["trigger.triggers[1].within"]
    assert list(automations_stub.ListAutomations(pb.ListAutomationsRequest()).automations) == []


def test_validate_only_stores_nothing(automations_stub: Any) -> None:
    message = wire_automations.automation_proto_from_prefect_json(definition())
    reply = automations_stub.CreateAutomation(
        pb.CreateAutomationRequest(automation=message, validate_only=True)
    )
    assert reply.display_name == "orders failing"
    assert list(automations_stub.ListAutomations(pb.ListAutomationsRequest()).automations) == []


def test_update_with_mask_changes_only_the_named_fields_and_stale_etags_abort(
    automations_stub: Any,
) -> None:
    created = create(automations_stub, definition())
    patch = wire_automations.automation_proto_from_prefect_json(
        dict(definition(), description="new")
    )
    patch.name = created.name
    patch.display_name = "ignored because not in the mask"
    updated = automations_stub.UpdateAutomation(
        pb.UpdateAutomationRequest(
            automation=patch, update_mask=field_mask_pb2.FieldMask(paths=["description"])
        )
    )
    assert updated.description == "new"
    assert updated.display_name == "orders failing"
    assert updated.etag != created.etag
    patch.etag = created.etag
    with pytest.raises(grpc.RpcError) as info:
        automations_stub.UpdateAutomation(
            pb.UpdateAutomationRequest(
                automation=patch, update_mask=field_mask_pb2.FieldMask(paths=["description"])
            )
        )
    assert info.value.code() == grpc.StatusCode.ABORTED


def test_list_paginates(automations_stub: Any) -> None:
    names = {create(automations_stub, dict(definition(), name=f"a{i}")).name for i in range(5)}
    seen: list[str] = []
    token = ""
    while True:
        page = automations_stub.ListAutomations(
            pb.ListAutomationsRequest(page_size=2, page_token=token)
        )
        assert len(page.automations) <= 2
        seen += [a.name for a in page.automations]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(names)


def publish(stub: event_service_pb2_grpc.EventServiceStub, *specs: tuple[str, str]) -> None:
    events = []
    for name, resource in specs:
        ev = event_pb2.Event(id=str(uuid.uuid4()), event=name)
        ev.occurred.GetCurrentTime()
        ev.resource.labels["prefect.resource.id"] = resource
        events.append(ev)
    reply = stub.PublishEvents(event_service_pb2.PublishEventsRequest(events=events))
    assert all(r.status == event_service_pb2.EVENT_STATUS_ACCEPTED for r in reply.results)


def test_firings_are_recorded_per_key_and_listed(automations_stub: Any, events_stub: Any) -> None:
    created = create(automations_stub, definition())
    publish(events_stub, ("order.failed", "o1"), ("order.failed", "o2"), ("order.failed", "o1"))
    fired = automations_stub.ListFirings(pb.ListFiringsRequest(parent=created.name)).firings
    assert len(fired) == 1
    assert dict(fired[0].triggering_labels) == {"prefect.resource.id": "o1"}
    assert fired[0].triggering_event.event == "order.failed"
    assert fired[0].automation == created.name


def test_disabled_automations_do_not_fire_and_enabling_reloads(
    automations_stub: Any, events_stub: Any
) -> None:
    created = create(automations_stub, definition(threshold=1))
    automations_stub.DisableAutomation(pb.DisableAutomationRequest(name=created.name))
    publish(events_stub, ("order.failed", "o1"))
    assert not automations_stub.ListFirings(pb.ListFiringsRequest(parent=created.name)).firings
    automations_stub.EnableAutomation(pb.EnableAutomationRequest(name=created.name))
    publish(events_stub, ("order.failed", "o1"))
    assert (
        len(automations_stub.ListFirings(pb.ListFiringsRequest(parent=created.name)).firings) == 1
    )


def test_simulate_returns_the_firings_of_timed_events(automations_stub: Any) -> None:
    request = pb.SimulateAutomationRequest(
        automation=wire_automations.automation_proto_from_prefect_json(definition())
    )
    for i, (t, resource) in enumerate([(0, "a"), (5, "b"), (10, "a")]):
        item = request.events.add()
        item.offset.FromSeconds(t)
        item.event.id = f"e{i}"
        item.event.event = "order.failed"
        item.event.resource.labels["prefect.resource.id"] = resource
        item.event.occurred.FromSeconds(t)
    request.until.FromSeconds(100)
    reply = automations_stub.SimulateAutomation(request)
    assert [(f.triggering_event_id, dict(f.triggering_labels)) for f in reply.firings] == [
        ("e2", {"prefect.resource.id": "a"})
    ]


def test_an_update_keeps_unchanged_trigger_state_and_resets_changed_triggers(
    automations_stub: Any, events_stub: Any
) -> None:
    created = create(automations_stub, definition())  # threshold 2 per order
    publish(events_stub, ("order.failed", "o1"))
    patch = wire_automations.automation_proto_from_prefect_json(
        dict(definition(), description="renamed")
    )
    patch.name = created.name
    automations_stub.UpdateAutomation(
        pb.UpdateAutomationRequest(
            automation=patch, update_mask=field_mask_pb2.FieldMask(paths=["description"])
        )
    )
    publish(events_stub, ("order.failed", "o1"))  # the count of 1 survived the update: fires
    request = pb.ListFiringsRequest(parent=created.name)
    assert len(automations_stub.ListFirings(request).firings) == 1

    publish(events_stub, ("order.failed", "o2"))
    patch = wire_automations.automation_proto_from_prefect_json(definition(threshold=3))
    patch.name = created.name
    automations_stub.UpdateAutomation(
        pb.UpdateAutomationRequest(
            automation=patch, update_mask=field_mask_pb2.FieldMask(paths=["trigger"])
        )
    )
    publish(events_stub, ("order.failed", "o2"), ("order.failed", "o2"))  # reset: 2 of 3
    assert len(automations_stub.ListFirings(request).firings) == 1
    publish(events_stub, ("order.failed", "o2"))
    assert len(automations_stub.ListFirings(request).firings) == 2
