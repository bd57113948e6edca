"""``automations cluster status [--json]``: the replicas, the partitions each owns, leases and lag.

Reads PostgreSQL (``cluster.status``) and, when NATS answers, each partition's last raw and forward
log sequence (``JetStreamLog.last_sequences``): the *lag* of a partition is what its log holds past
the offsets its owner committed. Without NATS the lag is left out (null), and said so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from automations.domain import errors


def add_parser(sub: Any) -> None:
    """Adds ``cluster status`` to the command line."""
    cluster = sub.add_parser("cluster", help="cluster mode")
    c_sub = cluster.add_subparsers(dest="cluster_command", required=True)
    status = c_sub.add_parser(
        "status", help="replicas, the partitions each owns, lease ages and log lag"
    )
    status.add_argument(
        "--database-url",
        default=os.environ.get("AUTOMATIONS_DATABASE_URL"),
        help="the cluster's PostgreSQL (env AUTOMATIONS_DATABASE_URL)",
    )
    status.add_argument(
        "--nats-url",
        default=os.environ.get("AUTOMATIONS_NATS_URL", "nats://127.0.0.1:4222"),
        help="its NATS server, for the log lag (env AUTOMATIONS_NATS_URL)",
    )
    status.add_argument(
        "--stream-prefix",
        default=os.environ.get("AUTOMATIONS_CLUSTER_STREAM_PREFIX", "AUTOMATIONS"),
        help="its streams' prefix (env AUTOMATIONS_CLUSTER_STREAM_PREFIX)",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=status_command)


def status_command(args: argparse.Namespace) -> int:
    """Prints the cluster's status; exit 1 when it cannot be read."""
    from automations.cluster import status as status_
    from automations.store import database as database_

    if not args.database_url:
        print("automations cluster status: --database-url is required", file=sys.stderr)
        return 2
    database = database_.Database(args.database_url)
    try:
        with database.read() as conn:
            seen = status_.read(conn)
    except errors.AutomationsError as exc:
        print(f"automations cluster status: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # the database itself: unreachable, not migrated
        print(f"automations cluster status: cannot read the cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    lag, why = asyncio.run(_log_lag(args, seen))
    data = seen.to_json()
    for partition in data["partitions"]:
        p = partition["partition"]
        partition["raw_lag"] = None if lag is None else max(0, lag[0][p] - partition["raw_seq"])
        partition["fwd_lag"] = None if lag is None else max(0, lag[1][p] - partition["fwd_seq"])
    data["log"] = "read" if lag is not None else f"unavailable: {why}"
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(_text(data))
    return 0


async def _log_lag(
    args: argparse.Namespace, seen: Any
) -> tuple[tuple[dict[int, int], dict[int, int]] | None, str]:
    """The last raw and forward sequence of every partition, or None and why."""
    from automations.cluster import log, log_streams

    try:
        opened = await log.JetStreamLog.connect(
            args.nats_url,
            log_streams.LogSettings(prefix=args.stream_prefix),
            connect_timeout=2.0,
            request_timeout=2.0,
        )
    except errors.AutomationsError as exc:
        return None, exc.message
    try:
        every = range(seen.partition_count)
        raw = await opened.last_sequences(log_streams.Stage.RAW, every)
        fwd = await opened.last_sequences(log_streams.Stage.FWD, every)
        return (raw, fwd), ""
    except errors.AutomationsError as exc:
        return None, exc.message
    finally:
        await opened.close()


def _text(data: dict[str, Any]) -> str:
    lines = [f"cluster: {data['partition_count']} partitions, log {data['log']}", "replicas:"]
    for replica in data["replicas"]:
        state = "alive" if replica["alive"] else "DEAD"
        lines.append(
            f"  {replica['id']}  {state}  grpc {replica['grpc_addr']}  up {replica['up_for']:.0f}s"
            f"  heartbeat {replica['heartbeat_age']:.1f}s ago  partitions "
            f"{len(replica['partitions'])}: {_ranges(replica['partitions'])}"
        )
    lines.append("partitions:")
    for p in data["partitions"]:
        held = "-" if p["held_for"] is None else f"{p['held_for']:.0f}s"
        lag = "?" if p["raw_lag"] is None else f"{p['raw_lag']}/{p['fwd_lag']}"
        lines.append(
            f"  {p['partition']:>4}  owner {p['owner'] or '-'}  epoch {p['epoch']}  "
            f"lease {p['lease_left']:+.1f}s  held {held}  raw {p['raw_seq']} fwd {p['fwd_seq']}"
            f"  lag {lag}"
        )
    if data["unowned"]:
        lines.append(f"unowned: {_ranges(data['unowned'])}")
    return "\n".join(lines)


def _ranges(numbers: list[int]) -> str:
    """``0-3,7`` for [0, 1, 2, 3, 7]."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and runs[-1][1] + 1 == n:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs) or "none"
