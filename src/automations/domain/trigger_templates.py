"""The trigger templates of Prefect's UI, as trigger JSON (``automations trigger TEMPLATE``).

Prefect's automation wizard offers four templates ("Flow run state", "Deployment status",
"Work pool status", "Work queue status"); each turns a few choices into an event trigger. The
functions here build the same JSON, field for field and in the same key order, as the UI's
mappers do (``PrefectHQ/prefect-ui-library``, ``src/automations/maps/flowRunStateTrigger.ts``,
``deploymentStatusTrigger.ts``, ``workPoolStatusTrigger.ts``, ``workQueueStatusTrigger.ts``,
``utilities.ts``, and ``triggers.ts`` for the request shape; ui-v2's
``trigger-step-utils.ts`` keeps the same shape "for JSON tab visual parity"):

- "Enters" / reactive: the status or state events in ``expect``, ``within`` 0.
- "Stays in" / proactive: the status or state events in ``after``, the events that end the
  stay in ``expect`` (any flow-run event; the other statuses), ``within`` = the duration.
- ``for_each`` is always ``["prefect.resource.id"]`` (one window per run, pool, queue...),
  ``threshold`` 1.

The printed JSON goes straight into ``automations automation create``; with ``--automation
NAME --action JSON`` the command prints a whole automation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

FLOW_RUN_STATES = (
    "Scheduled",
    "Late",
    "AwaitingRetry",
    "AwaitingConcurrencySlot",
    "Pending",
    "Paused",
    "Suspended",
    "Resuming",
    "Running",
    "Retrying",
    "Completed",
    "Cached",
    "Cancelling",
    "Cancelled",
    "Failed",
    "Crashed",
    "TimedOut",
)
"""The state names Prefect's UI offers (a flow run's event is ``prefect.flow-run.<name>``)."""

DEPLOYMENT_STATUSES = ("ready", "not_ready")
WORK_POOL_STATUSES = ("ready", "not_ready", "paused")
"""In the UI's order (``models/WorkPoolStatus.ts``): the proactive ``expect`` follows it."""
WORK_QUEUE_STATUSES = ("ready", "paused", "not_ready")
"""In the UI's order (``models/WorkPoolQueue.ts``): the proactive ``expect`` follows it."""

MIN_PROACTIVE_SECONDS = 10
"""Prefect refuses a proactive ``within`` below 10 s."""


def _event_trigger(
    *,
    posture: str,
    match: Mapping[str, Any],
    match_related: Mapping[str, Any] | list[dict[str, Any]] | None = None,
    after: Sequence[str] = (),
    expect: Sequence[str] = (),
    within: float = 0,
) -> dict[str, Any]:
    """The UI's ``AutomationTriggerEvent`` as its request JSON (``maps/triggers.ts``)."""
    if posture == "Proactive" and within < MIN_PROACTIVE_SECONDS:
        raise ValueError(f"a 'stays in' duration must be at least {MIN_PROACTIVE_SECONDS} seconds")
    return {
        "type": "event",
        "match": dict(match),
        "match_related": match_related if match_related is not None else {},
        "after": list(after),
        "expect": list(expect),
        "for_each": ["prefect.resource.id"],
        "posture": posture,
        "threshold": 1,
        "within": _number(within),
    }


def _number(seconds: float) -> float | int:
    return int(seconds) if float(seconds).is_integer() else seconds


def _resource_id(kind: str, ids: Sequence[str]) -> str | list[str]:
    """``toResourceId``: ``kind.*`` for none, else the list of ``kind.<id>``."""
    return f"{kind}.*" if not ids else [f"{kind}.{i}" for i in ids]


def _related(role: str, ids: Sequence[str]) -> dict[str, Any]:
    """``toMatchRelatedId``: the related resources of ``role`` with one of the ids."""
    return {
        "prefect.resource.role": role,
        "prefect.resource.id": [f"prefect.{role}.{i}" for i in ids],
    }


def status_name(value: str, choices: Sequence[str]) -> str:
    """Normalizes a status as typed (``NOT_READY``, ``not-ready``...) to the UI's name.

    Raises:
        ValueError: Not one of ``choices``.
    """
    name = value.strip().lower().replace("-", "_")
    if name not in choices:
        shown = ", ".join(c.upper() for c in choices)
        raise ValueError(f"unknown status {value!r} (choose from {shown})")
    return name


def flow_run_state(
    states: Sequence[str] = (),
    *,
    flows: Sequence[str] = (),
    tags: Sequence[str] = (),
    deployments: Sequence[str] = (),
    stays_for: float | None = None,
) -> dict[str, Any]:
    """Trigger: a flow run enters (or stays in) one of the states (``flowRunStateTrigger.ts``).

    Args:
        states: State names, e.g. ``Failed``; none: any state.
        flows: Only runs of these flow ids (related resource, role ``flow``).
        tags: Only runs with one of these tags (related resource, role ``tag``); the UI offers
            tags only when no flow is chosen.
        deployments: Only runs of these deployment ids (ui-v2's extra related resource, role
            ``deployment``; with flows or tags the UI makes ``match_related`` a list: both hold).
        stays_for: Seconds: "stays in" (proactive) instead of "enters" (reactive).

    Raises:
        ValueError: Flows and tags together, or a "stays in" shorter than 10 s.
    """
    if flows and tags:
        raise ValueError("choose flows or tags, not both (Prefect's UI offers one or the other)")
    state_events = [f"prefect.flow-run.{s}" for s in states] or ["prefect.flow-run.*"]
    specs = [_related("flow", flows)] if flows else [_related("tag", tags)] if tags else []
    if deployments:
        specs.append(_related("deployment", deployments))
    related: dict[str, Any] | list[dict[str, Any]] = (
        {} if not specs else specs[0] if len(specs) == 1 else specs
    )
    match = {"prefect.resource.id": "prefect.flow-run.*"}
    if stays_for is None:
        return _event_trigger(
            posture="Reactive", match=match, match_related=related, expect=state_events
        )
    return _event_trigger(
        posture="Proactive",
        match=match,
        match_related=related,
        after=state_events,
        expect=["prefect.flow-run.*"],
        within=stays_for,
    )


def deployment_status(
    status: str, *, deployments: Sequence[str] = (), for_seconds: float | None = None
) -> dict[str, Any]:
    """Trigger: a deployment enters (or stays in) a status (``deploymentStatusTrigger.ts``).

    Args:
        status: ``ready`` or ``not_ready``.
        deployments: Deployment ids; none: every deployment.
        for_seconds: Seconds: "stays in" (proactive: no event of the other status in time).
    """
    status = status_name(status, DEPLOYMENT_STATUSES)

    def event(name: str) -> str:
        return "prefect.deployment." + name.replace("_", "-")

    other = "ready" if status == "not_ready" else "not_ready"
    match = {"prefect.resource.id": _resource_id("prefect.deployment", deployments)}
    if for_seconds is None:
        return _event_trigger(posture="Reactive", match=match, expect=[event(status)])
    return _event_trigger(
        posture="Proactive",
        match=match,
        expect=[event(other)],
        after=[event(status)],
        within=for_seconds,
    )


def _work_pool_events(status: str) -> list[str]:
    if status == "not_ready":
        # the UI keeps the old event name too, for automations made before it was renamed
        return ["prefect.work-pool.not-ready", "prefect.work-pool.not_ready"]
    return [f"prefect.work-pool.{status}"]


def work_pool_status(
    status: str, *, work_pools: Sequence[str] = (), for_seconds: float | None = None
) -> dict[str, Any]:
    """Trigger: a work pool enters (or stays in) a status (``workPoolStatusTrigger.ts``).

    Args:
        status: ``ready``, ``not_ready`` or ``paused``.
        work_pools: Work pool ids; none: every work pool.
        for_seconds: Seconds: "stays in" (proactive: no event of another status in time).
    """
    status = status_name(status, WORK_POOL_STATUSES)
    match = {"prefect.resource.id": _resource_id("prefect.work-pool", work_pools)}
    if for_seconds is None:
        return _event_trigger(posture="Reactive", match=match, expect=_work_pool_events(status))
    others = [e for s in WORK_POOL_STATUSES if s != status for e in _work_pool_events(s)]
    return _event_trigger(
        posture="Proactive",
        match=match,
        expect=others,
        after=_work_pool_events(status),
        within=for_seconds,
    )


def work_queue_status(
    status: str,
    *,
    work_queues: Sequence[str] = (),
    work_pools: Sequence[str] = (),
    for_seconds: float | None = None,
) -> dict[str, Any]:
    """Trigger: a work queue enters (or stays in) a status (``workQueueStatusTrigger.ts``).

    Args:
        status: ``ready``, ``not_ready`` or ``paused``.
        work_queues: Work queue ids; none: every work queue.
        work_pools: Only queues of these work pool ids (related resource, role ``work-pool``).
        for_seconds: Seconds: "stays in" (proactive: no event of another status in time).
    """
    status = status_name(status, WORK_QUEUE_STATUSES)

    def event(name: str) -> str:
        return "prefect.work-queue." + name.replace("_", "-")

    match = {"prefect.resource.id": _resource_id("prefect.work-queue", work_queues)}
    related = _related("work-pool", work_pools) if work_pools else {}
    if for_seconds is None:
        return _event_trigger(
            posture="Reactive", match=match, match_related=related, expect=[event(status)]
        )
    return _event_trigger(
        posture="Proactive",
        match=match,
        match_related=related,
        expect=[event(s) for s in WORK_QUEUE_STATUSES if s != status],
        after=[event(status)],
        within=for_seconds,
    )


def automation(
    name: str,
    trigger: Mapping[str, Any],
    actions: Sequence[Mapping[str, Any]],
    *,
    description: str = "",
) -> dict[str, Any]:
    """An automation (Prefect's JSON, as ``automation create`` reads it) around a trigger."""
    return {
        "name": name,
        "description": description,
        "enabled": True,
        "trigger": dict(trigger),
        "actions": [dict(a) for a in actions],
    }
