"""Entry point of the ``automations`` command: its commands and flags are names users rely on."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from automations.cli import (
    bridge_command,
    client_commands,
    cluster_command,
    executor_command,
    invocation_commands,
    local_commands,
    trigger_command,
    webhook_commands,
)

DEFAULT_SERVER = "127.0.0.1:50051"


def build_parser() -> argparse.ArgumentParser:
    """Builds the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="automations",
        description="Event automations engine (Prefect Automations semantics) over gRPC.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the engine")
    serve.add_argument(
        "--grpc-addr", help="gRPC HOST:PORT (env AUTOMATIONS_GRPC_ADDR; default 127.0.0.1:50051)"
    )
    serve.add_argument(
        "--metrics-addr",
        help="Prometheus HOST:PORT (env AUTOMATIONS_METRICS_ADDR; default 127.0.0.1:9464)",
    )
    serve.add_argument(
        "--http-addr",
        help="incoming webhooks at /hooks/<slug>, HOST:PORT; empty: off (env "
        "AUTOMATIONS_HTTP_ADDR; default 127.0.0.1:8470)",
    )
    serve.add_argument(
        "--database-url", help="sqlite:///path or postgresql://... (env AUTOMATIONS_DATABASE_URL)"
    )
    serve.add_argument(
        "--no-executors", action="store_true", default=None, help="do not start bundled executors"
    )
    serve.add_argument(
        "--executor",
        action="append",
        dest="executors",
        metavar="ACTION_TYPE=HOST:PORT",
        help="route an action type to an executor (repeatable; env AUTOMATIONS_EXECUTORS)",
    )
    serve.add_argument(
        "--prefect-api-url",
        metavar="URL",
        help="a Prefect server's API: start the prefect executor, load Prefect objects for "
        "templates (env AUTOMATIONS_PREFECT_API_URL)",
    )
    serve.add_argument(
        "--tls-cert",
        dest="tls_cert_file",
        metavar="FILE",
        help="PEM certificate chain: serve TLS (env AUTOMATIONS_TLS_CERT_FILE)",
    )
    serve.add_argument(
        "--tls-key",
        dest="tls_key_file",
        metavar="FILE",
        help="PEM private key of --tls-cert (env AUTOMATIONS_TLS_KEY_FILE)",
    )
    serve.add_argument(
        "--tls-client-ca",
        dest="tls_client_ca_file",
        metavar="FILE",
        help="PEM CA bundle: require client certificates it signed, mTLS "
        "(env AUTOMATIONS_TLS_CLIENT_CA_FILE)",
    )
    serve.add_argument(
        "--deny-private-networks",
        dest="executor_deny_private_networks",
        action="store_true",
        default=None,
        help="the bundled webhook and notify executors refuse loopback and private addresses "
        "too; cloud metadata addresses are always refused "
        "(env AUTOMATIONS_EXECUTOR_DENY_PRIVATE_NETWORKS)",
    )
    serve.add_argument(
        "--cluster",
        action="store_true",
        default=None,
        help="run as one replica of a cluster: PostgreSQL --database-url and NATS JetStream "
        "--nats-url (env AUTOMATIONS_CLUSTER)",
    )
    serve.add_argument(
        "--nats-url",
        metavar="URL",
        help="cluster mode's NATS server, nats://HOST:4222 (env AUTOMATIONS_NATS_URL)",
    )
    serve.add_argument("--config", help="TOML settings file (env AUTOMATIONS_CONFIG)")
    serve.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")
    serve.set_defaults(handler=local_commands.serve)

    simulate = sub.add_parser("simulate", help="run a conformance scenario on a virtual clock")
    simulate.add_argument("scenario", help="SCENARIO.json")
    simulate.set_defaults(handler=local_commands.simulate)

    executor_command.add_parser(sub)
    cluster_command.add_parser(sub)

    cfg = sub.add_parser("config", help="settings")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    show = cfg_sub.add_parser("show", help="print the effective settings (secrets masked)")
    show.add_argument("--config", help="TOML settings file")
    show.set_defaults(handler=local_commands.config_show)

    def client(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--server",
            default=os.environ.get("AUTOMATIONS_SERVER", DEFAULT_SERVER),
            help="engine HOST:PORT (env AUTOMATIONS_SERVER)",
        )
        p.add_argument(
            "--tls",
            action="store_true",
            default=os.environ.get("AUTOMATIONS_TLS", "") not in ("", "0", "false"),
            help="use TLS, verifying the server against the system's roots (env AUTOMATIONS_TLS)",
        )
        p.add_argument(
            "--tls-ca",
            metavar="FILE",
            default=os.environ.get("AUTOMATIONS_TLS_CA") or None,
            help="PEM CA bundle verifying the server; implies TLS (env AUTOMATIONS_TLS_CA)",
        )
        p.add_argument(
            "--tls-cert",
            metavar="FILE",
            default=os.environ.get("AUTOMATIONS_TLS_CLIENT_CERT") or None,
            help="PEM client certificate for mTLS (env AUTOMATIONS_TLS_CLIENT_CERT)",
        )
        p.add_argument(
            "--tls-key",
            metavar="FILE",
            default=os.environ.get("AUTOMATIONS_TLS_CLIENT_KEY") or None,
            help="PEM private key of --tls-cert (env AUTOMATIONS_TLS_CLIENT_KEY)",
        )
        p.add_argument(
            "--token",
            default=None,
            help="the engine's API bearer token; visible to every user of this machine in the "
            "process list: prefer the environment (AUTOMATIONS_API_TOKEN) or --token-file",
        )
        p.add_argument(
            "--token-file",
            metavar="FILE",
            default=os.environ.get("AUTOMATIONS_API_TOKEN_FILE") or None,
            help="read the API token from FILE (env AUTOMATIONS_API_TOKEN_FILE)",
        )
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    automation = sub.add_parser("automation", help="manage automations")
    a_sub = automation.add_subparsers(dest="automation_command", required=True)
    p = client(a_sub.add_parser("create", help="create from Prefect's automation JSON"))
    p.add_argument("file", help="FILE.json ('-' for stdin)")
    p.set_defaults(handler=client_commands.automation_create)
    p = client(a_sub.add_parser("list", help="list automations"))
    p.add_argument("--limit", type=int, default=None, help="print at most N")
    p.set_defaults(handler=client_commands.automation_list)
    for verb, handler in (
        ("get", client_commands.automation_get),
        ("delete", client_commands.automation_delete),
        ("enable", client_commands.automation_enable),
        ("disable", client_commands.automation_disable),
    ):
        p = client(a_sub.add_parser(verb, help=f"{verb} an automation"))
        p.add_argument("id")
        p.set_defaults(handler=handler)
    p = client(a_sub.add_parser("update", help="replace an automation from a JSON file"))
    p.add_argument("id")
    p.add_argument("file", help="FILE.json ('-' for stdin)")
    p.set_defaults(handler=client_commands.automation_update)

    ev = sub.add_parser("events", help="publish and list events")
    e_sub = ev.add_subparsers(dest="events_command", required=True)
    p = client(e_sub.add_parser("publish", help="publish events from JSON lines"))
    p.add_argument("file", help="FILE.jsonl ('-' for stdin)")
    p.add_argument("--batch-size", type=int, default=500)
    p.set_defaults(handler=client_commands.events_publish)
    p = client(e_sub.add_parser("list", help="list events from the event log"))
    p.add_argument("--name", action="append", default=[], help="event name or pattern (repeatable)")
    p.add_argument("--resource", action="append", default=[], help="resource id (repeatable)")
    p.add_argument("--since", help="ISO 8601 start time")
    p.add_argument("--until", help="ISO 8601 end time")
    p.add_argument("--limit", type=int, default=None, help="print at most N")
    p.set_defaults(handler=client_commands.events_list)

    fi = sub.add_parser("firings", help="firing history")
    f_sub = fi.add_subparsers(dest="firings_command", required=True)
    p = client(f_sub.add_parser("list", help="list firings, newest first"))
    p.add_argument("--automation", help="only this automation's firings")
    p.add_argument("--limit", type=int, default=None, help="print at most N")
    p.set_defaults(handler=client_commands.firings_list)
    p = client(f_sub.add_parser("get", help="show one firing, with its triggering event"))
    p.add_argument("id", help="the firing id")
    p.add_argument("--automation", help="its automation's id (default: whichever it is)")
    p.set_defaults(handler=client_commands.firings_get)
    invocation_commands.add_parser(sub, client)
    webhook_commands.add_parser(sub, client)
    bridge_command.add_parser(sub, client)
    trigger_command.add_parser(sub)
    return parser


OPEN_FILES = 65_536
"""The soft limit on open files ``main`` asks for (never above the hard limit)."""


def raise_open_files_limit() -> int:
    """Lifts the soft limit on open files towards the hard one; returns the soft limit now.

    The engine keeps up to 1,024 invocations in flight and the webhook executor as many
    connections, beyond the soft limit of 1,024 many systems start processes with.
    """
    try:
        import resource
    except ImportError:  # not a Unix
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return int(soft)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    raise_open_files_limit()
    args = build_parser().parse_args(argv)
    status: int = args.handler(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
