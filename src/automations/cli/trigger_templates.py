"""``automations trigger TEMPLATE``: the trigger templates of Prefect's UI, as trigger JSON.

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

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from automations.domain import errors, prefect_json

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


def _posture(seconds: float | None) -> str:
    return "Reactive" if seconds is None else "Proactive"


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


# ------------------------------------------------------------------------------ command line


def add_parser(sub: Any) -> None:
    """Adds ``trigger flow-run-state|deployment-status|work-pool-status|work-queue-status``."""
    trigger = sub.add_parser(
        "trigger", help="print the trigger JSON of one of Prefect's UI trigger templates"
    )
    t_sub = trigger.add_subparsers(dest="trigger_template", required=True)

    p = _template(t_sub, "flow-run-state", "a flow run enters (or stays in) a state")
    p.add_argument(
        "--state",
        action="append",
        default=[],
        dest="states",
        help=f"state name, e.g. Failed (repeatable; default any): {', '.join(FLOW_RUN_STATES)}",
    )
    p.add_argument("--flow", action="append", default=[], dest="flows", help="flow id")
    p.add_argument("--tag", action="append", default=[], dest="tags", help="flow run tag")
    p.add_argument(
        "--deployment", action="append", default=[], dest="deployments", help="deployment id"
    )
    p.add_argument(
        "--stays-for",
        type=float,
        metavar="SECONDS",
        help="fire when a run stays in the state this long (proactive); default: when it enters",
    )
    p.set_defaults(
        build=lambda a: flow_run_state(
            a.states,
            flows=a.flows,
            tags=a.tags,
            deployments=a.deployments,
            stays_for=a.stays_for,
        )
    )

    p = _status_template(t_sub, "deployment-status", "a deployment's status", DEPLOYMENT_STATUSES)
    p.add_argument("--deployment", action="append", default=[], dest="ids", help="deployment id")
    p.set_defaults(
        build=lambda a: deployment_status(a.status, deployments=a.ids, for_seconds=a.for_seconds)
    )

    p = _status_template(t_sub, "work-pool-status", "a work pool's status", WORK_POOL_STATUSES)
    p.add_argument("--work-pool", action="append", default=[], dest="ids", help="work pool id")
    p.set_defaults(
        build=lambda a: work_pool_status(a.status, work_pools=a.ids, for_seconds=a.for_seconds)
    )

    p = _status_template(t_sub, "work-queue-status", "a work queue's status", WORK_QUEUE_STATUSES)
    p.add_argument("--work-queue", action="append", default=[], dest="ids", help="work queue id")
    p.add_argument(
        "--work-pool", action="append", default=[], dest="pools", help="work pool id of the queues"
    )
    p.set_defaults(
        build=lambda a: work_queue_status(
            a.status, work_queues=a.ids, work_pools=a.pools, for_seconds=a.for_seconds
        )
    )


def _template(t_sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = t_sub.add_parser(name, help=text, description=f"Trigger: {text}.")
    p.add_argument(
        "--automation",
        metavar="NAME",
        help="print a whole automation with this name around the trigger (needs --action)",
    )
    p.add_argument(
        "--action",
        action="append",
        default=[],
        dest="actions",
        metavar="JSON",
        help='an action of the automation, e.g. \'{"type": "do-nothing"}\' (repeatable)',
    )
    p.add_argument("--description", default="", help="the automation's description")
    p.set_defaults(handler=print_template)
    return p


def _status_template(
    t_sub: Any, name: str, text: str, statuses: Sequence[str]
) -> argparse.ArgumentParser:
    p = _template(t_sub, name, f"{text} becomes (or stays) STATUS")
    p.add_argument(
        "--status", required=True, help=f"one of {', '.join(s.upper() for s in statuses)}"
    )
    p.add_argument(
        "--for",
        dest="for_seconds",
        type=float,
        metavar="SECONDS",
        help="fire when it stays in the status this long (proactive); default: when it enters",
    )
    return p


def print_template(args: argparse.Namespace) -> int:
    """Prints the template's trigger (or automation) JSON; exit 2 on a bad choice."""
    try:
        document: dict[str, Any] = args.build(args)
        if args.automation is not None or args.actions:
            if not args.automation or not args.actions:
                raise ValueError("--automation NAME and --action JSON go together")
            actions = [_action(text) for text in args.actions]
            document = automation(args.automation, document, actions, description=args.description)
            prefect_json.parse_automation(document)
        else:
            prefect_json.parse_trigger(document)
    except (ValueError, errors.InvalidArgument) as exc:
        print(f"automations trigger {args.trigger_template}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(document, indent=2))
    return 0


def _action(text: str) -> dict[str, Any]:
    try:
        action = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--action is not JSON: {exc}") from None
    if not isinstance(action, dict):
        raise ValueError("--action must be a JSON object with a 'type'")
    return action
