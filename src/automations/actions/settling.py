"""From an attempt's outcome to what the writer records.

The outbox row's new state, and the ``action.executed`` / ``.failed`` event (plus any emitted
events) with their place in the causal tree (``planning.Caused``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from automations.actions import lifecycle, outcomes, planning
from automations.domain import errors, invocations

logger = logging.getLogger(__name__)

SetEnabled = Callable[[str, bool, int, str], object]
"""Enables or disables an automation (id, enabled, chain depth, origin); raises
``errors.NotFound``."""


def settle(
    outcome: outcomes.Outcome, *, now: float, set_enabled: SetEnabled
) -> tuple[invocations.Finish, list[planning.Caused]]:
    """Applies an outcome's effect and says how to record it.

    Args:
        outcome: The attempt's outcome (its claim already checked to be current).
        now: The time of recording.
        set_enabled: Carries out a pause- / resume-automation effect in the caller's transaction.

    Returns:
        The outbox update, and the lifecycle (and emitted) events to publish.
    """
    invocation = outcome.job.invocation
    request = invocation.request
    depth = request.depth + 1
    origin = request.origin or invocation.firing_id
    status = outcome.status
    reason = outcome.reason
    error = outcome.error
    if status == outcomes.SUCCEEDED and outcome.set_enabled is not None:
        target, enabled = outcome.set_enabled
        try:
            set_enabled(target, enabled, depth, origin)
        except errors.NotFound:  # raised before anything changed
            status = outcomes.FAILED
            reason = error = f"Automation {target} could not be found"
    ids = {
        "invocation_id": invocation.id,
        "automation_id": invocation.automation_id,
        "firing_id": invocation.firing_id,
        "action_type": invocation.action_type,
        "attempt": invocation.attempts,
    }
    if status == outcomes.RETRY:
        logger.info("action will be retried", extra={**ids, "error": error})
        retry = invocations.Finish(
            invocation.id,
            invocations.InvocationStatus.PENDING,
            error=error or "",
            next_attempt_at=outcome.next_attempt_at,
        )
        return retry, []
    if status == outcomes.SUCCEEDED:
        logger.debug("action executed", extra=ids)
        finish = invocations.Finish(
            invocation.id, invocations.InvocationStatus.SUCCEEDED, result=outcome.result
        )
    else:
        dead = status == outcomes.DEAD_LETTER
        logger.warning(
            "action dead-lettered" if dead else "action failed",
            extra={**ids, "reason": reason or error},
        )
        finish = invocations.Finish(
            invocation.id,
            invocations.InvocationStatus.DEAD_LETTER
            if dead
            else invocations.InvocationStatus.FAILED,
            error=(error or "") if dead else (error or reason or ""),
        )
    made: list[planning.Caused] = [
        planning.Caused(
            lifecycle.action_finished(
                request.automation,
                outcome.job.firing,
                event_id=lifecycle.new_event_id(),
                action_triggered_event_id=request.action_triggered_event_id,
                triggered_event_id=request.triggered_event_id,
                action_index=invocation.action_index,
                action_type=invocation.action_type,
                invocation_id=invocation.id,
                now=now,
                details=dict(outcome.details),
                reason=None if status == outcomes.SUCCEEDED else (reason or "failed"),
            ),
            depth,
            origin,
        )
    ]
    if status == outcomes.SUCCEEDED:
        made.extend(planning.Caused(event, depth, origin) for event in outcome.emitted)
    return finish, made
