"""A firing becomes outbox rows and lifecycle events; the loop guard cuts deep chains."""

from __future__ import annotations

from automations.actions import lifecycle, planning
from automations.domain import automations, events, firings, invocations, prefect_json


def automation() -> automations.Automation:
    return prefect_json.parse_automation(
        {
            "name": "orders",
            "trigger": {"type": "event", "expect": ["order.placed"], "threshold": 1, "within": 0},
            "actions": [{"type": "call-webhook", "url": "http://x", "payload": "{{ event.id }}"}],
            "actions_on_trigger": [{"type": "do-nothing"}],
        },
        automation_id="a1",
    )


def firing(event_time: float = 100.0, fired: float = 101.0) -> firings.Firing:
    event = events.Event(
        id="e1", event="order.placed", occurred=event_time, resource={"prefect.resource.id": "o.1"}
    )
    return firings.Firing(
        id="f1",
        automation_id="a1",
        trigger_id="t1",
        trigger_type="event",
        posture="Reactive",
        triggered=fired,
        triggering_event=event,
        triggering_labels={"prefect.resource.id": "o.1"},
    )


def test_each_action_gets_a_deterministic_idempotency_key() -> None:
    one = planning.plan_firing(automation(), firing(), depth=0, now=101.0, lease=60.0)
    two = planning.plan_firing(automation(), firing(), depth=0, now=102.0, lease=60.0)
    keys = [i.idempotency_key for i in one.invocations]
    assert keys == [i.idempotency_key for i in two.invocations]
    assert len(set(keys)) == 2
    assert keys[0] == planning.idempotency_key("a1", "f1", 0)
    assert all(i.id == i.idempotency_key for i in one.invocations)


def test_fresh_invocations_are_leased_to_the_dispatcher_or_left_pending() -> None:
    leased = planning.plan_firing(automation(), firing(), depth=0, now=101.0, lease=60.0)
    webhook = leased.invocations[0]
    assert (webhook.status, webhook.attempts, webhook.next_attempt_at) == (
        invocations.InvocationStatus.RUNNING,
        1,
        161.0,
    )
    queued = planning.plan_firing(
        automation(), firing(), depth=0, now=101.0, lease=60.0, dispatch_now=False
    )
    webhook = queued.invocations[0]
    assert (webhook.status, webhook.attempts, webhook.next_attempt_at) == (
        invocations.InvocationStatus.PENDING,
        0,
        101.0,
    )


def test_do_nothing_is_done_as_it_is_planned_with_its_executed_event() -> None:
    plan = planning.plan_firing(automation(), firing(), depth=0, now=101.0, lease=60.0)
    done = plan.invocations[1]
    assert (done.action_type, done.status, done.attempts) == ("do-nothing", "succeeded", 1)
    executed = plan.events[-1][0]
    assert executed.event == lifecycle.ACTION_EXECUTED
    assert executed.payload["invocation"] == done.id
    assert executed.follows == done.request.action_triggered_event_id


def test_a_firing_publishes_triggered_then_one_action_triggered_per_action() -> None:
    plan = planning.plan_firing(
        automation(), firing(), depth=2, origin="client-event", now=101.0, lease=60.0
    )
    names = [caused.event.event for caused in plan.events]
    assert names == [
        lifecycle.AUTOMATION_TRIGGERED,
        lifecycle.ACTION_TRIGGERED,
        lifecycle.ACTION_TRIGGERED,
        lifecycle.ACTION_EXECUTED,  # do-nothing is done at once
    ]
    assert {(caused.depth, caused.origin) for caused in plan.events} == {(3, "client-event")}
    assert {i.request.origin for i in plan.invocations} == {"client-event"}
    triggered = plan.events[0].event
    assert triggered.resource["prefect.resource.id"] == "prefect.automation.a1"
    assert triggered.resource["prefect.posture"] == "Reactive"
    assert triggered.related[0]["prefect.resource.role"] == "triggering-event"
    assert triggered.payload["triggering_event"]["id"] == "e1"
    action_event = plan.events[1][0]
    assert action_event.follows == "e1"
    assert action_event.payload == {
        "action_index": 0,
        "action_type": "call-webhook",
        "invocation": plan.invocations[0].id,
    }
    assert plan.invocations[0].request.action_triggered_event_id == action_event.id


def test_action_triggered_does_not_follow_an_event_older_than_five_minutes() -> None:
    plan = planning.plan_firing(
        automation(), firing(event_time=0.0, fired=400.0), depth=0, now=400.0, lease=60.0
    )
    assert plan.events[1][0].follows is None


def test_actions_on_trigger_see_the_automation_triggered_event_itself() -> None:
    plan = planning.plan_firing(automation(), firing(), depth=0, now=101.0, lease=60.0)
    regular, on_trigger = plan.invocations
    own = planning.action_event(regular.request, firing(), received=0.0)
    assert own is not None
    assert own.id == "e1"
    seen = planning.action_event(on_trigger.request, firing(), received=0.0)
    assert seen is not None
    assert seen.event == lifecycle.AUTOMATION_TRIGGERED
    assert seen.id == plan.events[0][0].id


def test_the_loop_guard_writes_failed_invocations_and_no_event_at_the_limit() -> None:
    plan = planning.plan_firing(automation(), firing(), depth=4, now=101.0, lease=60.0, max_depth=4)
    assert plan.events == []
    assert plan.capped == [firing()]
    assert {i.status for i in plan.invocations} == {invocations.InvocationStatus.FAILED}
    assert all("chain cut" in (i.last_error or "") for i in plan.invocations)
    below = planning.plan_firing(
        automation(), firing(), depth=3, now=101.0, lease=60.0, max_depth=4
    )
    assert below.capped == [] and below.events


def metric_automation() -> automations.Automation:
    return prefect_json.parse_automation(
        {
            "name": "lateness",
            "trigger": {
                "type": "metric",
                "metric": {"name": "lateness", "threshold": 600, "operator": ">"},
            },
            "actions": [{"type": "call-webhook", "url": "http://x/every"}],
            "actions_on_trigger": [{"type": "call-webhook", "url": "http://x/page"}],
            "actions_on_resolve": [
                {"type": "call-webhook", "url": "http://x/close"},
                {"type": "do-nothing"},
            ],
        },
        automation_id="a2",
    )


def metric_firing(state: firings.FiringState, value: float) -> firings.Firing:
    return firings.Firing(
        id=f"f-{state.value}",
        automation_id="a2",
        trigger_id="t2",
        trigger_type="metric",
        posture="Metric",
        triggered=500.0,
        triggering_event=None,
        state=state,
        triggering_value=value,
    )


def test_a_resolved_firing_runs_actions_on_resolve_only_with_their_all_actions_index() -> None:
    resolved = metric_firing(firings.FiringState.RESOLVED, 12.5)
    plan = planning.plan_firing(metric_automation(), resolved, depth=0, now=500.0, lease=60.0)
    assert [(i.action_index, i.action_type) for i in plan.invocations] == [
        (2, "call-webhook"),
        (3, "do-nothing"),
    ]
    assert [caused.event.event for caused in plan.events] == [
        lifecycle.AUTOMATION_RESOLVED,
        lifecycle.ACTION_TRIGGERED,
        lifecycle.ACTION_TRIGGERED,
        lifecycle.ACTION_EXECUTED,
    ]
    state_event = plan.events[0].event
    assert state_event.resource == {
        "prefect.resource.id": "prefect.automation.a2",
        "prefect.resource.name": "lateness",
        "prefect.posture": "Metric",
    }
    assert state_event.payload == {
        "triggering_labels": {},
        "triggering_event": None,
        "triggering_value": 12.5,
    }
    assert plan.events[1].event.resource["prefect.trigger-type"] == "metric"
    seen = planning.action_event(plan.invocations[0].request, resolved, received=0.0)
    assert seen is not None and (seen.event, seen.id) == (
        lifecycle.AUTOMATION_RESOLVED,
        state_event.id,
    )


def test_a_triggered_metric_firing_runs_actions_then_actions_on_trigger() -> None:
    triggered = metric_firing(firings.FiringState.TRIGGERED, 900.0)
    plan = planning.plan_firing(metric_automation(), triggered, depth=0, now=500.0, lease=60.0)
    assert [i.request.action.parameters["url"] for i in plan.invocations] == [
        "http://x/every",
        "http://x/page",
    ]
    assert plan.events[0].event.event == lifecycle.AUTOMATION_TRIGGERED
    assert plan.events[0].event.payload["triggering_value"] == 900.0
    assert planning.planned_actions(metric_automation(), triggered)[1][2] is True
