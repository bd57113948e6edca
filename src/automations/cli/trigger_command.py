"""``automations trigger TEMPLATE``: prints the trigger (or automation) JSON of a UI template.

The templates themselves are ``domain.trigger_templates``; this module is their command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from automations.domain import errors, prefect_json
from automations.domain import trigger_templates as templates


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
        help=f"state name, e.g. Failed (repeatable; default any): {', '.join(templates.FLOW_RUN_STATES)}",
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
        build=lambda a: templates.flow_run_state(
            a.states,
            flows=a.flows,
            tags=a.tags,
            deployments=a.deployments,
            stays_for=a.stays_for,
        )
    )

    p = _status_template(
        t_sub, "deployment-status", "a deployment's status", templates.DEPLOYMENT_STATUSES
    )
    p.add_argument("--deployment", action="append", default=[], dest="ids", help="deployment id")
    p.set_defaults(
        build=lambda a: templates.deployment_status(
            a.status, deployments=a.ids, for_seconds=a.for_seconds
        )
    )

    p = _status_template(
        t_sub, "work-pool-status", "a work pool's status", templates.WORK_POOL_STATUSES
    )
    p.add_argument("--work-pool", action="append", default=[], dest="ids", help="work pool id")
    p.set_defaults(
        build=lambda a: templates.work_pool_status(
            a.status, work_pools=a.ids, for_seconds=a.for_seconds
        )
    )

    p = _status_template(
        t_sub, "work-queue-status", "a work queue's status", templates.WORK_QUEUE_STATUSES
    )
    p.add_argument("--work-queue", action="append", default=[], dest="ids", help="work queue id")
    p.add_argument(
        "--work-pool", action="append", default=[], dest="pools", help="work pool id of the queues"
    )
    p.set_defaults(
        build=lambda a: templates.work_queue_status(
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
            document = templates.automation(
                args.automation, document, actions, description=args.description
            )
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
