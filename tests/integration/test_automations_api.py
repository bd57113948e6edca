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


# ------------------------------------------------------------------------------- automation ids

# Ids that break the rule (lower-case RFC 1034 label or UUID); "" is refused in names only, since
# an unset automation_id asks the server to pick one.
BAD_IDS = ["é", "Ab", "a" * 64, "-ab", "1ab", "ab-", "a/b", "a_b", "a b", " ab"]


def invalid_field(method: Any, request: Any) -> str:
    """Calls a method that must fail with INVALID_ARGUMENT; returns the field it names."""
    with pytest.raises(grpc.RpcError) as info:
        method(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    _, fields = error_details(info.value)
    (field,) = fields
    return field


def test_create_refuses_ids_its_names_could_not_carry_and_names_refuse_them_too(
    automations_stub: Any,
) -> None:
    message = wire_automations.automation_proto_from_prefect_json(definition())
    for bad in BAD_IDS:
        request = pb.CreateAutomationRequest(automation=message, automation_id=bad)
        assert invalid_field(automations_stub.CreateAutomation, request) == "automation_id"
        request.validate_only = True
        assert invalid_field(automations_stub.CreateAutomation, request) == "automation_id"
    for bad in [*BAD_IDS, ""]:
        name = f"automations/{bad}"
        patch = pb.UpdateAutomationRequest(automation=message)
        patch.automation.name = name
        calls = [
            ("name", automations_stub.GetAutomation, pb.GetAutomationRequest(name=name)),
            ("name", automations_stub.DeleteAutomation, pb.DeleteAutomationRequest(name=name)),
            ("name", automations_stub.EnableAutomation, pb.EnableAutomationRequest(name=name)),
            ("name", automations_stub.DisableAutomation, pb.DisableAutomationRequest(name=name)),
            ("automation.name", automations_stub.UpdateAutomation, patch),
            ("parent", automations_stub.ListFirings, pb.ListFiringsRequest(parent=name)),
        ]
        for field, method, refused in calls:
            assert invalid_field(method, refused) == field, bad
    assert list(automations_stub.ListAutomations(pb.ListAutomationsRequest()).automations) == []


def test_ids_given_or_generated_can_be_read_updated_and_deleted(automations_stub: Any) -> None:
    message = wire_automations.automation_proto_from_prefect_json(definition())
    given = automations_stub.CreateAutomation(
        pb.CreateAutomationRequest(automation=message, automation_id="orders-failing-2")
    )
    generated = automations_stub.CreateAutomation(pb.CreateAutomationRequest(automation=message))
    assert given.uid == "orders-failing-2"
    assert str(uuid.UUID(generated.uid)) == generated.uid
    for created in (given, generated):
        got = automations_stub.GetAutomation(pb.GetAutomationRequest(name=created.name))
        assert got.uid == created.uid
        patch = pb.UpdateAutomationRequest(
            automation=got, update_mask=field_mask_pb2.FieldMask(paths=["description"])
        )
        patch.automation.description = "read back"
        assert automations_stub.UpdateAutomation(patch).description == "read back"
        automations_stub.DeleteAutomation(pb.DeleteAutomationRequest(name=created.name))


# ------------------------------------------------------------------------------------ filtering


def test_list_filters_by_the_supported_terms_across_pages(automations_stub: Any) -> None:
    def make(automation_id: str, **changes: Any) -> None:
        data = {**definition(), "name": automation_id, "tags": ["ops"], **changes}
        automations_stub.CreateAutomation(
            pb.CreateAutomationRequest(
                automation=wire_automations.automation_proto_from_prefect_json(data),
                automation_id=automation_id,
            )
        )

    make("watch-a")
    make("quiet-b", enabled=False)
    make("watch-c", tags=["ops", "paging"])
    make(
        "both-d",
        trigger={"type": "compound", "require": "all", "triggers": [{"expect": ["a"]}]},
    )
    make("watch-e", tags=[])

    def listed(text: str, page_size: int = 0) -> list[str]:
        seen: list[str] = []
        token = ""
        while True:
            page = automations_stub.ListAutomations(
                pb.ListAutomationsRequest(filter=text, page_size=page_size, page_token=token)
            )
            assert page_size == 0 or len(page.automations) <= page_size
            seen += [a.uid for a in page.automations]
            token = page.next_page_token
            if not token:
                return seen

    assert listed('display_name:"watch"') == ["watch-a", "watch-c", "watch-e"]
    assert listed('display_name:"watch"', page_size=1) == ["watch-a", "watch-c", "watch-e"]
    assert listed('name = "automations/quiet-b"') == ["quiet-b"]
    assert listed("enabled = false") == ["quiet-b"]
    assert listed('enabled = true AND tags:"ops"', page_size=2) == ["watch-a", "watch-c", "both-d"]
    assert listed('tags:"paging"') == ["watch-c"]
    assert listed('trigger.type = "compound"') == ["both-d"]
    assert listed('trigger.type = "event" AND name:"-e"') == ["watch-e"]
    for bad in ('tags:"a" OR tags:"b"', "enabled = yes", 'create_time > "2020"', "NOT x"):
        request = pb.ListAutomationsRequest(filter=bad)
        assert invalid_field(automations_stub.ListAutomations, request) == "filter"


# ---------------------------------------------------------------------- firings and invocations


def test_firings_and_invocations_are_read_one_by_one_under_their_automation(
    automations_stub: Any, events_stub: Any
) -> None:
    created = create(automations_stub, definition(threshold=1))
    other = create(automations_stub, dict(definition(), name="other"))
    publish(events_stub, ("order.failed", "o1"))
    (listed,) = automations_stub.ListFirings(pb.ListFiringsRequest(parent=created.name)).firings
    assert listed.name == f"{created.name}/firings/{listed.uid}"
    assert automations_stub.GetFiring(pb.GetFiringRequest(name=listed.name)) == listed
    anywhere = f"automations/-/firings/{listed.uid}"
    assert automations_stub.GetFiring(pb.GetFiringRequest(name=anywhere)) == listed

    (invocation,) = automations_stub.ListActionInvocations(
        pb.ListActionInvocationsRequest(parent=created.name)
    ).action_invocations
    assert invocation.name == f"{created.name}/actionInvocations/{invocation.uid}"
    assert invocation.firing_uid == listed.uid
    for name in (
        invocation.name,
        f"automations/-/actionInvocations/{invocation.uid}",
        f"{created.name}/invocations/{invocation.uid}",  # the older collection id
    ):
        got = automations_stub.GetActionInvocation(pb.GetActionInvocationRequest(name=name))
        assert (got.name, got.uid, got.action_type) == (
            invocation.name,
            invocation.uid,
            "do-nothing",
        )

    elsewhere = f"{other.name}/actionInvocations/{invocation.uid}"
    unknown = [
        (
            automations_stub.GetFiring,
            pb.GetFiringRequest(name=f"{other.name}/firings/{listed.uid}"),
        ),
        (
            automations_stub.GetFiring,
            pb.GetFiringRequest(name=f"{created.name}/firings/{uuid.uuid4()}"),
        ),
        (automations_stub.GetActionInvocation, pb.GetActionInvocationRequest(name=elsewhere)),
        (
            automations_stub.GetActionInvocation,
            pb.GetActionInvocationRequest(name=f"automations/-/actionInvocations/{uuid.uuid4()}"),
        ),
        (automations_stub.RedriveAction, pb.RedriveActionRequest(name=elsewhere)),
    ]
    for method, request in unknown:
        with pytest.raises(grpc.RpcError) as info:
            method(request)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    for bad in (f"{created.name}/firings/", "firings/x", f"automations/Ab/firings/{listed.uid}"):
        request = pb.GetFiringRequest(name=bad)
        assert invalid_field(automations_stub.GetFiring, request) == "name"
    for bad in (listed.name, f"automations/a b/actionInvocations/{invocation.uid}"):
        get = pb.GetActionInvocationRequest(name=bad)
        assert invalid_field(automations_stub.GetActionInvocation, get) == "name"


# ----------------------------------------------------------- request fields as they are documented


def test_delete_with_a_stale_etag_aborts_and_with_the_current_one_deletes(
    automations_stub: Any,
) -> None:
    created = create(automations_stub, definition())
    patch = pb.UpdateAutomationRequest(
        automation=created, update_mask=field_mask_pb2.FieldMask(paths=["description"])
    )
    patch.automation.description = "changed"
    current = automations_stub.UpdateAutomation(patch)
    with pytest.raises(grpc.RpcError) as info:
        automations_stub.DeleteAutomation(
            pb.DeleteAutomationRequest(name=created.name, etag=created.etag)
        )
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert error_details(info.value)[0] == "ETAG_MISMATCH"
    assert automations_stub.GetAutomation(pb.GetAutomationRequest(name=created.name)) == current
    automations_stub.DeleteAutomation(
        pb.DeleteAutomationRequest(name=created.name, etag=current.etag)
    )
    assert list(automations_stub.ListAutomations(pb.ListAutomationsRequest()).automations) == []


def test_create_ignores_output_only_fields_and_simulate_ignores_name_and_enabled(
    automations_stub: Any,
) -> None:
    message = wire_automations.automation_proto_from_prefect_json(definition(threshold=1))
    message.name = "automations/not-this-one"
    message.uid = "not-this-one"
    message.create_time.FromSeconds(5)
    created = automations_stub.CreateAutomation(
        pb.CreateAutomationRequest(automation=message, automation_id="this-one")
    )
    assert (created.name, created.uid) == ("automations/this-one", "this-one")
    assert created.create_time.seconds > 5

    message.enabled = False
    request = pb.SimulateAutomationRequest(automation=message)
    item = request.events.add()
    item.offset.FromSeconds(1)
    item.event.id = "e1"
    item.event.event = "order.failed"
    item.event.resource.labels["prefect.resource.id"] = "o1"
    fired = automations_stub.SimulateAutomation(request).firings
    assert [f.triggering_event_id for f in fired] == ["e1"]
    assert [f.name for f in fired] == [""]
