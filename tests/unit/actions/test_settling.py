"""How an attempt's outcome is recorded: the outbox update and the lifecycle events."""

from __future__ import annotations

from automations.actions import lifecycle, outcomes, planning, settling
from automations.domain import actions, errors, events, firings, invocations


def job() -> planning.Job:
    invocation = invocations.Invocation(
        id="k1",
        automation_id="a1",
        firing_id="f1",
        action_index=0,
        action_type="pause-automation",
        idempotency_key="k1",
        request=invocations.InvocationRequest(
            action=actions.Action("pause-automation"),
            automation=invocations.AutomationSummary(id="a1", name="pauser"),
            depth=2,
            triggered_event_id="t1",
            action_triggered_event_id="at1",
        ),
        status=invocations.InvocationStatus.RUNNING,
        attempts=1,
    )
    firing = firings.Firing("f1", "a1", "tr1", "event", "Reactive", 5.0, None)
    return planning.Job(invocation, firing)


def never(target: str, enabled: bool, depth: int, origin: str) -> None:
    raise AssertionError("no effect expected")


def test_a_success_is_recorded_with_executed_and_its_emitted_events_one_level_deeper() -> None:
    emitted = events.Event(
        id="e9", event="acme.x", occurred=5.0, resource={"prefect.resource.id": "r"}
    )
    outcome = outcomes.Outcome(job(), outcomes.SUCCEEDED, result={"ok": 1}, emitted=[emitted])
    finish, made = settling.settle(outcome, now=10.0, set_enabled=never)
    assert (finish.status, finish.result) == (invocations.InvocationStatus.SUCCEEDED, {"ok": 1})
    (executed, depth, origin), (extra, extra_depth, extra_origin) = made
    assert executed.event == lifecycle.ACTION_EXECUTED and executed.follows == "at1"
    assert (depth, extra.id, extra_depth) == (3, "e9", 3)
    assert origin == extra_origin == "f1"  # a request without an origin: its firing roots it


def test_pausing_an_automation_that_is_gone_fails_with_the_reason() -> None:
    def gone(target: str, enabled: bool, depth: int, origin: str) -> None:
        raise errors.NotFound(f"automation {target!r} not found")

    outcome = outcomes.Outcome(job(), outcomes.SUCCEEDED, result={}, set_enabled=("a9", False))
    finish, made = settling.settle(outcome, now=10.0, set_enabled=gone)
    assert (finish.status, finish.error) == (
        invocations.InvocationStatus.FAILED,
        "Automation a9 could not be found",
    )
    ((failed, _, _),) = made
    assert failed.event == lifecycle.ACTION_FAILED
    assert failed.payload["reason"] == "Automation a9 could not be found"


def test_a_retry_goes_back_to_pending_without_an_event() -> None:
    outcome = outcomes.Outcome(
        job(), outcomes.RETRY, error="UNAVAILABLE: down", next_attempt_at=42.0
    )
    finish, made = settling.settle(outcome, now=10.0, set_enabled=never)
    assert (finish.status, finish.next_attempt_at, finish.error) == (
        invocations.InvocationStatus.PENDING,
        42.0,
        "UNAVAILABLE: down",
    )
    assert made == []


def test_a_dead_letter_publishes_failed_with_the_reason() -> None:
    outcome = outcomes.Outcome(
        job(), outcomes.DEAD_LETTER, error="UNAVAILABLE: down", reason="Gave up after 5 attempts"
    )
    finish, made = settling.settle(outcome, now=10.0, set_enabled=never)
    assert finish.status == invocations.InvocationStatus.DEAD_LETTER
    assert made[0][0].payload["reason"] == "Gave up after 5 attempts"
