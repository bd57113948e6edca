"""``automations invocations list|redrive``: the outbox, seen and driven from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from automations import client
from automations.cli import client_commands as common
from automations.domain import prefect_json
from automations.v1 import automation_service_pb2
from automations.wire import invocations as wire_invocations
from automations.wire import names, structs


def add_parser(sub: Any, with_client_flags: Any) -> None:
    """Adds ``invocations list`` and ``invocations redrive`` to the command line."""
    inv = sub.add_parser("invocations", help="action invocations (the outbox)")
    i_sub = inv.add_subparsers(dest="invocations_command", required=True)
    p = with_client_flags(i_sub.add_parser("list", help="list action invocations, oldest first"))
    p.add_argument("--automation", help="only this automation's invocations")
    p.add_argument(
        "--status",
        action="append",
        default=[],
        choices=sorted(wire_invocations.INVOCATION_STATES),
        help="only invocations in this status (repeatable)",
    )
    p.add_argument("--limit", type=int, default=None, help="print at most N")
    p.set_defaults(handler=invocations_list)
    p = with_client_flags(
        i_sub.add_parser("redrive", help="re-queue a failed or dead-lettered invocation")
    )
    p.add_argument("invocation", help="the invocation id")
    p.add_argument("--automation", required=True, help="its automation's id")
    p.set_defaults(handler=invocations_redrive)


def invocations_list(args: argparse.Namespace) -> int:
    """``invocations list [--automation ID] [--status S]... [--limit N]``."""
    stub = common._stub(args)
    parent = f"automations/{args.automation}" if args.automation else ""
    states = [wire_invocations.INVOCATION_STATES[s] for s in args.status]

    def fetch(token: str, size: int) -> tuple[list[Any], str]:
        reply = common._call(
            lambda: stub.ListActionInvocations(
                automation_service_pb2.ListActionInvocationsRequest(
                    parent=parent, states=states, page_size=size, page_token=token
                )
            )
        )
        return list(reply.action_invocations), reply.next_page_token

    found = [invocation_json(i) for i in client.pages(fetch, args.limit)]
    common._print(
        args,
        found,
        lambda items: (
            "\n".join(
                f"{i['created']}  {i['id']}  {i['action_type']}  {i['status']}  "
                f"attempts={i['attempts']}  {i['last_error'] or ''}".rstrip()
                for i in items
            )
            or "(no invocations)"
        ),
    )
    return 0


def invocations_redrive(args: argparse.Namespace) -> int:
    """``invocations redrive ID --automation ID``."""
    stub = common._stub(args)
    name = names.invocation_name(args.automation, args.invocation)
    reply = common._call(
        lambda: stub.RedriveAction(automation_service_pb2.RedriveActionRequest(name=name))
    )
    found = invocation_json(reply)
    common._print(args, found, lambda item: f"{item['id']}  {item['status']}")
    return 0


def invocation_json(message: Any) -> dict[str, Any]:
    """An ``ActionInvocation`` as the CLI prints it."""
    return {
        "id": message.uid,
        "automation_id": message.automation.split("/", 1)[-1],
        "firing_id": message.firing_uid,
        "action_index": message.action_index,
        "action_type": message.action_type,
        "status": wire_invocations.INVOCATION_STATUSES.get(message.state, "unknown"),
        "attempts": message.attempts,
        "next_attempt": (
            prefect_json.iso_time(structs.timestamp_to_seconds(message.next_attempt_time))
            if message.HasField("next_attempt_time")
            else None
        ),
        "last_error": message.last_error or None,
        "result": structs.struct_to_dict(message.result) if message.HasField("result") else None,
        "created": prefect_json.iso_time(structs.timestamp_to_seconds(message.create_time)),
        "updated": prefect_json.iso_time(structs.timestamp_to_seconds(message.update_time)),
    }
