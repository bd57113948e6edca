from __future__ import annotations

import uuid

import grpc
import pytest

from automations import executor
from automations.executors.prefect import inference
from automations.v1 import event_pb2

D1, D2 = uuid.uuid4(), uuid.uuid4()
FR1, FR2 = uuid.uuid4(), uuid.uuid4()


def event(primary: str, *related: tuple[str, str]) -> event_pb2.Event:
    e = event_pb2.Event(id=str(uuid.uuid4()), event="prefect.flow-run.Completed")
    e.resource.labels["prefect.resource.id"] = primary
    for resource_id, role in related:
        r = e.related.add()
        r.labels["prefect.resource.id"] = resource_id
        r.labels["prefect.resource.role"] = role
    return e


def test_the_deployment_is_the_first_related_one_in_a_flow_run_event() -> None:
    e = event(
        f"prefect.flow-run.{FR1}",
        ("prefect.flow.abc", "flow"),
        (f"prefect.deployment.{D1}", "deployment"),
        (f"prefect.deployment.{D2}", "deployment"),
    )
    assert inference.infer(inference.DEPLOYMENT, e) == D1


def test_the_primary_resource_comes_before_the_related_ones() -> None:
    e = event(f"prefect.deployment.{D2}", (f"prefect.deployment.{D1}", "deployment"))
    assert inference.infer(inference.DEPLOYMENT, e) == D2


def test_the_role_is_ignored() -> None:
    e = event("acme.thing.1", (f"prefect.work-pool.{D1}", "anything-at-all"))
    assert inference.infer(inference.WORK_POOL, e) == D1


def test_a_first_resource_whose_id_is_not_a_uuid_does_not_fall_through_to_the_next() -> None:
    e = event(
        "acme.thing.1",
        ("prefect.deployment.not-a-uuid", "deployment"),
        (f"prefect.deployment.{D1}", "deployment"),
    )
    with pytest.raises(executor.ActionError) as info:
        inference.infer(inference.DEPLOYMENT, e)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.message == "No deployment could be inferred"
    assert info.value.reason == "DEPLOYMENT_NOT_INFERRED"


def test_the_kind_is_the_id_minus_its_last_dotted_part_only() -> None:
    # prefect.deployment.<x>.<uuid> is of kind prefect.deployment.<x>, not a deployment
    e = event(f"prefect.deployment.extra.{D1}", (f"prefect.work-queue.{D2}", "work-queue"))
    with pytest.raises(executor.ActionError):
        inference.infer(inference.DEPLOYMENT, e)
    assert inference.infer(inference.WORK_QUEUE, e) == D2


@pytest.mark.parametrize(
    ("kind", "noun"),
    [
        (inference.DEPLOYMENT, "deployment"),
        (inference.WORK_POOL, "work pool"),
        (inference.WORK_QUEUE, "work queue"),
    ],
)
def test_without_an_event_the_reason_says_so(kind: inference.Kind, noun: str) -> None:
    with pytest.raises(executor.ActionError) as info:
        inference.infer(kind, None)
    assert info.value.message == f"No event to infer the {noun}"
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("kind", "noun"),
    [
        (inference.DEPLOYMENT, "deployment"),
        (inference.WORK_POOL, "work pool"),
        (inference.WORK_QUEUE, "work queue"),
    ],
)
def test_an_event_without_the_kind_infers_nothing(kind: inference.Kind, noun: str) -> None:
    with pytest.raises(executor.ActionError) as info:
        inference.infer(kind, event(f"prefect.flow-run.{FR1}", ("prefect.flow.x", "flow")))
    assert info.value.message == f"No {noun} could be inferred"


def test_a_flow_run_comes_from_the_triggering_labels_first() -> None:
    e = event(f"prefect.flow-run.{FR1}")
    labels = {"prefect.resource.id": f"prefect.flow-run.{FR2}"}
    assert inference.infer_flow_run(e, labels) == FR2


def test_a_flow_run_comes_from_the_labels_even_without_an_event() -> None:
    labels = {"prefect.resource.id": f"prefect.flow-run.{FR2}"}
    assert inference.infer_flow_run(None, labels) == FR2


def test_labels_naming_something_else_fall_back_to_the_event() -> None:
    e = event(f"prefect.deployment.{D1}", (f"prefect.flow-run.{FR1}", "flow-run"))
    for labels in (
        {"prefect.resource.id": f"prefect.deployment.{D1}"},
        {"prefect.resource.id": "prefect.flow-run.not-a-uuid"},
        {"other": "x"},
        {},
    ):
        assert inference.infer_flow_run(e, labels) == FR1


def test_a_flow_run_event_with_a_bad_first_id_infers_no_flow_run() -> None:
    e = event("prefect.flow-run.bad", (f"prefect.flow-run.{FR1}", "flow-run"))
    with pytest.raises(executor.ActionError) as info:
        inference.infer_flow_run(e, {})
    assert info.value.message == "No flow run could be inferred"
    assert info.value.reason == "FLOW_RUN_NOT_INFERRED"


def test_no_labels_and_no_event_infer_no_flow_run() -> None:
    with pytest.raises(executor.ActionError) as info:
        inference.infer_flow_run(None, {})
    assert info.value.message == "No flow run could be inferred"
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_an_automation_triggered_event_infers_no_flow_run() -> None:
    # actions_on_trigger see the automation.triggered event: only the automation is in it
    e = event(f"prefect.automation.{uuid.uuid4()}")
    with pytest.raises(executor.ActionError):
        inference.infer_flow_run(e, {})
