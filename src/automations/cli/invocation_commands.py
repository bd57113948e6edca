"""``automations invocations list|get|redrive``: the outbox, seen and driven from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from automations import client
from automations.cli import client_commands as common
from automations.v1 import automation_service_pb2
from automations.wire import invocations as wire_invocations
from automations.wire import names


def add_parser(sub: Any, with_client_flags: Any) -> None:
    """Adds ``invocations list``, ``invocations get`` and ``invocations redrive``."""
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
    p = with_client_flags(i_sub.add_parser("get", help="show one action invocation"))
    p.add_argument("invocation", help="the invocation id")
    p.add_argument("--automation", help="its automation's id (default: whichever it is)")
    p.set_defaults(handler=invocations_get)
    p = with_client_flags(
        i_sub.add_parser("redrive", help="re-queue a failed or dead-lettered invocation")
    )
    p.add_argument("invocation", help="the invocation id")
    p.add_argument("--automation", help="its automation's id (default: whichever it is)")
    p.set_defaults(handler=invocations_redrive)


@common._handle
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

    found = [wire_invocations.invocation_to_json(i) for i in client.pages(fetch, args.limit)]
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


@common._handle
def invocations_get(args: argparse.Namespace) -> int:
    """``invocations get ID [--automation ID]``."""
    stub = common._stub(args)
    name = names.invocation_name(args.automation or names.ANY_AUTOMATION, args.invocation)
    reply = common._call(
        lambda: stub.GetActionInvocation(
            automation_service_pb2.GetActionInvocationRequest(name=name)
        )
    )
    found = wire_invocations.invocation_to_json(reply)
    common._print(
        args,
        found,
        lambda item: (
            f"{item['id']}  {item['action_type']}  {item['status']}  attempts={item['attempts']}"
            f"  {item['last_error'] or ''}".rstrip()
        ),
    )
    return 0


@common._handle
def invocations_redrive(args: argparse.Namespace) -> int:
    """``invocations redrive ID [--automation ID]``."""
    stub = common._stub(args)
    name = names.invocation_name(args.automation or names.ANY_AUTOMATION, args.invocation)
    reply = common._call(
        lambda: stub.RedriveAction(automation_service_pb2.RedriveActionRequest(name=name))
    )
    found = wire_invocations.invocation_to_json(reply)
    common._print(args, found, lambda item: f"{item['id']}  {item['status']}")
    return 0
