"""``automations executor NAME``: runs one bundled executor as its own gRPC server."""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_ADDR = "127.0.0.1:50061"
"""Where a bundled executor listens unless ``--addr`` says otherwise."""

NAMES = ("webhook", "notify", "noop", "prefect")
"""The bundled executors (``automations.executors.EXECUTORS``, not imported here to keep every
other command's start-up free of gRPC servers, httpx and Apprise)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the ``executor`` sub-command to ``sub``."""
    p = sub.add_parser(
        "executor",
        help="run a bundled executor (webhook, notify, noop, prefect) as a gRPC ExecutorService",
    )
    p.add_argument("name", help=f"which bundled executor: {', '.join(NAMES)}")
    p.add_argument("--addr", default=DEFAULT_ADDR, help=f"gRPC HOST:PORT (default {DEFAULT_ADDR})")
    p.add_argument(
        "--state",
        help="SQLite file of idempotency keys (default ./automations-executor-NAME.db)",
    )
    p.add_argument("--metrics-addr", help="Prometheus HOST:PORT serving /metrics (default: none)")
    p.add_argument(
        "--deny-private-networks",
        action="store_true",
        help="webhook: also refuse loopback, RFC 1918, CGNAT and unique-local addresses",
    )
    p.add_argument(
        "--timeout", type=float, default=None, help="default timeout of one action in seconds"
    )
    p.add_argument(
        "--action-type",
        action="append",
        dest="action_types",
        default=[],
        metavar="TYPE",
        help="noop: also serve this action type (repeatable)",
    )
    p.add_argument(
        "--prefect-api-url",
        metavar="URL",
        default=None,
        help="prefect: the Prefect API, e.g. http://127.0.0.1:4200/api (default $PREFECT_API_URL)",
    )
    p.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain: serve TLS")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    p.add_argument(
        "--tls-client-ca",
        metavar="FILE",
        help="PEM CA bundle: require client certificates it signed (mTLS)",
    )
    p.add_argument("--log-json", action="store_true", help="JSON log lines")
    p.add_argument("--log-level", default="INFO", help="log level (default INFO)")
    p.set_defaults(handler=executor)


def executor(args: argparse.Namespace) -> int:
    """Runs the bundled executor ``args.name`` until SIGTERM or SIGINT; returns the exit code."""
    if args.name not in NAMES:
        print(
            f"automations executor: no bundled executor {args.name!r} (choose from "
            f"{', '.join(NAMES)})",
            file=sys.stderr,
        )
        return 2
    from automations import logs
    from automations.executors import run

    logs.configure(level=str(args.log_level).upper(), json_lines=bool(args.log_json))
    if bool(args.tls_cert) != bool(args.tls_key):
        print("automations executor: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    prefect_api_url = args.prefect_api_url or os.environ.get("PREFECT_API_URL") or None
    if args.name == "prefect" and not prefect_api_url:
        print(
            "automations executor: prefect needs --prefect-api-url or PREFECT_API_URL",
            file=sys.stderr,
        )
        return 2
    if args.timeout is not None and args.timeout <= 0:
        print("automations executor: --timeout must be positive", file=sys.stderr)
        return 2
    return run(
        args.name,
        args.addr,
        state=args.state,
        metrics_addr=args.metrics_addr,
        deny_private_networks=args.deny_private_networks,
        timeout=args.timeout,
        action_types=tuple(args.action_types),
        tls_cert_file=args.tls_cert,
        tls_key_file=args.tls_key,
        tls_client_ca_file=args.tls_client_ca,
        prefect_api_url=prefect_api_url,
    )
