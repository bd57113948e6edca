"""From a firing to its outbox rows and lifecycle events (runs on the writer, in its transaction).

A firing of automation A becomes:

* one ``prefect.automation.triggered`` event (``prefect.automation.resolved`` for a Resolved
  firing);
* per action it runs (:func:`planned_actions`), one invocation whose id is its idempotency key
  ``uuid5(automation, firing, index)`` — the same however often the firing is re-planned — and one
  ``prefect.automation.action.triggered`` event.

Which actions run: on a Triggered firing ``actions`` then ``actions_on_trigger``; on a Resolved
firing ``actions_on_resolve`` only. Prefect runs ``actions`` on every firing, Resolved ones
included; here they do not, so that a metric's recovery does not page a second time for one
incident (``actions_on_resolve`` is where recovery actions go). An action's index is its position
in ``actions + actions_on_trigger + actions_on_resolve`` (``Automation.all_actions``), as in
Prefect's ``action_index`` order.

The invocation's ``request`` keeps what the dispatcher needs later, even after a restart or an
update of the automation: the action as it was defined when it fired, a summary of the automation
for templates, the ids of the two lifecycle events it follows, and its *chain depth*.

Chain depth is the loop guard. An event a client sends has depth 0; an event an automation
produces (its lifecycle events, ``emit-event``) has the depth of the event that caused the firing
plus one. A firing caused by an event at ``max_depth`` or deeper runs no action and publishes no
lifecycle event: its invocations are written as failed with the reason, so a loop such as "on any
action failure, call a failing webhook" stops after ``max_depth`` rounds instead of running forever.
A firing can also be cut for the causal tree's budget (``pipeline.cascade``): it is planned the
same way, with the budget's reason.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, NamedTuple

from automations.actions import internal, lifecycle
from automations.domain import actions as actions_
from automations.domain import automations, events, firings, ids, invocations

KEY_NAMESPACE = uuid.UUID("5b0b5f0e-7f6b-4c1a-9d8e-3c2f1a7e6d10")
"""Namespace of the invocations' uuid5 idempotency keys."""

DEFAULT_MAX_CHAIN_DEPTH = 8
"""Automations firing on each other's events in a row before the chain is cut."""


def idempotency_key(automation_id: str, firing_id: str, action_index: int) -> str:
    """The invocation's id and idempotency key: deterministic in (automation, firing, index)."""
    return str(uuid.uuid5(KEY_NAMESPACE, f"{automation_id}/{firing_id}/{action_index}"))


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    """An invocation handed to the dispatcher, with its firing when it is at hand.

    Attributes:
        invocation: The outbox row, as claimed (``running``, ``attempts`` >= 1).
        firing: The firing, or None when the dispatcher must load it.
    """

    invocation: invocations.Invocation
    firing: firings.Firing | None = None


class Caused(NamedTuple):
    """An event an automation made, with its place in the causal tree it belongs to.

    Attributes:
        event: The event.
        depth: Automation-made events in a row before it, itself included (a client's event: 0).
        origin: The id of the event at the tree's root (a client's event, or a deadline firing).
    """

    event: events.Event
    depth: int
    origin: str


@dataclasses.dataclass(slots=True)
class Plan:
    """What the firings of one evaluation produce.

    Attributes:
        events: Lifecycle events to publish, each with its place in the causal tree.
        invocations: Outbox rows to insert.
        capped: Firings whose chain was cut (no action, no lifecycle event).
    """

    events: list[Caused] = dataclasses.field(default_factory=list)
    invocations: list[invocations.Invocation] = dataclasses.field(default_factory=list)
    capped: list[firings.Firing] = dataclasses.field(default_factory=list)


def chain_cut_reason(max_depth: int) -> str:
    """The error recorded on the invocations of a firing whose chain was cut."""
    return (
        f"automation chain cut: the firing was caused by {max_depth} automation events in a row "
        "(an automation reacting to its own or another automation's events); raise "
        "max_chain_depth if the chain is intended"
    )


def tree_cut_reason(max_firings: int) -> str:
    """The error recorded on the invocations of a firing cut for its causal tree's budget."""
    return (
        f"automation cascade cut: automations already fired {max_firings} times on events made "
        "by automations from one originating event (automations reacting to each other's "
        "events); raise max_cascade_firings if the cascade is intended"
    )


def planned_actions(
    automation: automations.Automation, firing: firings.Firing
) -> list[tuple[int, actions_.Action, bool]]:
    """The actions a firing runs: ``(action_index, action, sees the automation's state event)``.

    ``actions`` see the firing's triggering event; ``actions_on_trigger`` and
    ``actions_on_resolve`` see the ``prefect.automation.triggered`` / ``.resolved`` event itself.
    """
    on_trigger_from = len(automation.actions)
    if firing.state is firings.FiringState.RESOLVED:
        on_resolve_from = on_trigger_from + len(automation.actions_on_trigger)
        return [
            (on_resolve_from + i, action, True)
            for i, action in enumerate(automation.actions_on_resolve)
        ]
    planned = [(i, action, False) for i, action in enumerate(automation.actions)]
    planned.extend(
        (on_trigger_from + i, action, True)
        for i, action in enumerate(automation.actions_on_trigger)
    )
    return planned


def plan_firing(
    automation: automations.Automation,
    firing: firings.Firing,
    *,
    depth: int,
    now: float,
    lease: float,
    origin: str = "",
    max_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
    cut: str | None = None,
    dispatch_now: bool = True,
    into: Plan | None = None,
) -> Plan:
    """Plans one firing's invocations and lifecycle events.

    Args:
        automation: The automation that fired (as loaded when it fired).
        firing: The firing.
        depth: The chain depth of the event that caused it (0 for client events).
        origin: The root of the causal tree (``Caused.origin``); the firing's own id when empty.
        now: The current time.
        lease: Seconds an invocation handed straight to the dispatcher stays leased.
        max_depth: Depth from which the chain is cut.
        cut: A reason to cut the firing anyway (the causal tree's budget is spent).
        dispatch_now: True: the invocations are written ``running`` (attempt 1, leased) because
            they go straight to the dispatcher; False: ``pending``, due now, for its poller.
        into: A plan to add to (one per transaction).

    Returns:
        The plan (``into`` when given).
    """
    plan = Plan() if into is None else into
    summary = invocations.AutomationSummary.of(automation)
    actions = planned_actions(automation, firing)
    origin = origin or firing.id
    if depth >= max_depth or cut is not None:
        plan.capped.append(firing)
        reason = chain_cut_reason(max_depth) if depth >= max_depth else str(cut)
        for index, action, _ in actions:
            plan.invocations.append(
                _invocation(
                    automation.id,
                    firing.id,
                    index,
                    action.type,
                    invocations.InvocationRequest(action=action, automation=summary),
                    status=invocations.InvocationStatus.FAILED,
                    last_error=reason,
                    created=now,
                    updated=now,
                )
            )
        return plan
    # derived from the firing, so that evaluating the same firing again makes the same events
    triggered_id = ids.derived_from(firing.id, "triggered")
    plan.events.append(
        Caused(
            lifecycle.automation_state_changed(
                summary, firing, event_id=triggered_id, received=now
            ),
            depth + 1,
            origin,
        )
    )
    for index, action, sees_state_event in actions:
        key = idempotency_key(automation.id, firing.id, index)
        action_event_id = ids.derived_from(firing.id, f"action.{index}.triggered")
        plan.events.append(
            Caused(
                lifecycle.action_triggered(
                    summary,
                    firing,
                    event_id=action_event_id,
                    triggered_event_id=triggered_id,
                    action_index=index,
                    action_type=action.type,
                    invocation_id=key,
                    received=now,
                ),
                depth + 1,
                origin,
            )
        )
        request = invocations.InvocationRequest(
            action=action,
            automation=summary,
            depth=depth,
            triggered_event_id=triggered_id,
            action_triggered_event_id=action_event_id,
            on_trigger=sees_state_event,
            origin=origin,
        )
        if action.type == internal.DO_NOTHING:
            # Nothing to render, nothing to call: done in this transaction, with its
            # action.executed event, rather than through the dispatcher and a second one.
            state: dict[str, Any] = {
                "status": invocations.InvocationStatus.SUCCEEDED,
                "attempts": 1,
                "result": {},
            }
            plan.events.append(
                Caused(
                    lifecycle.action_finished(
                        summary,
                        firing,
                        event_id=ids.derived_from(firing.id, f"action.{index}.finished"),
                        action_triggered_event_id=action_event_id,
                        triggered_event_id=triggered_id,
                        action_index=index,
                        action_type=action.type,
                        invocation_id=key,
                        now=now,
                        details={},
                    ),
                    depth + 1,
                    origin,
                )
            )
        elif dispatch_now:
            state = {
                "status": invocations.InvocationStatus.RUNNING,
                "attempts": 1,
                "next_attempt_at": now + lease,
            }
        else:
            state = {
                "status": invocations.InvocationStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
            }
        plan.invocations.append(
            _invocation(
                automation.id,
                firing.id,
                index,
                action.type,
                request,
                key=key,
                created=now,
                updated=now,
                **state,
            )
        )
    return plan


def _invocation(
    automation_id: str,
    firing_id: str,
    index: int,
    action_type: str,
    request: invocations.InvocationRequest,
    *,
    key: str | None = None,
    **state: Any,
) -> invocations.Invocation:
    if key is None:
        key = idempotency_key(automation_id, firing_id, index)
    return invocations.Invocation(
        id=key,
        automation_id=automation_id,
        firing_id=firing_id,
        action_index=index,
        action_type=action_type,
        idempotency_key=key,
        request=request,
        **state,
    )


def action_event(
    request: invocations.InvocationRequest, firing: firings.Firing, *, received: float
) -> events.Event | None:
    """The event an invocation's templates and executor see.

    ``actions`` see the firing's triggering event; ``actions_on_trigger`` and
    ``actions_on_resolve`` see the ``prefect.automation.triggered`` / ``.resolved`` event itself
    (rebuilt with its original id), as in Prefect.
    """
    if request.on_trigger:
        return lifecycle.automation_state_changed(
            request.automation,
            firing,
            event_id=request.triggered_event_id,
            received=received,
        )
    return firing.triggering_event
