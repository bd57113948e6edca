"""``automations bridge prefect``: feeds a Prefect server's event stream into the engine.

The bridge (``automations.bridge.prefect_events``) reads Prefect's ``/api/events/out``
websocket; this command gives it a publisher calling the engine's
``EventService.PublishEvents`` and runs it until SIGTERM or SIGINT (exit 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

import grpc

from automations.bridge import prefect_events
from automations.cli import client_commands as common
from automations.domain import errors, prefect_json
from automations.v1 import event_pb2, event_service_pb2, event_service_pb2_grpc
from automations.wire import events as wire_events

logger = logging.getLogger("automations.bridge")

RETRYABLE = frozenset(
    {
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
"""PublishEvents failures worth sending the same batch again for (publishing is idempotent by
event id); others stop the bridge."""


def add_parser(sub: Any, client: Callable[[argparse.ArgumentParser], Any]) -> None:
    """Adds ``bridge prefect`` to the command line (``client`` adds the engine's flags)."""
    bridge = sub.add_parser("bridge", help="feed another system's events into the engine")
    b_sub = bridge.add_subparsers(dest="bridge_command", required=True)
    p = client(
        b_sub.add_parser("prefect", help="subscribe to a Prefect server's events (/api/events/out)")
    )
    p.add_argument(
        "--prefect-api-url",
        default=os.environ.get("PREFECT_API_URL"),
        help="Prefect's API URL, e.g. http://127.0.0.1:4200/api (env PREFECT_API_URL)",
    )
    p.add_argument(
        "--prefect-auth-token",
        default=os.environ.get("PREFECT_API_AUTH_STRING") or os.environ.get("PREFECT_API_KEY"),
        help="token of Prefect's websocket auth message "
        "(env PREFECT_API_AUTH_STRING or PREFECT_API_KEY)",
    )
    p.add_argument(
        "--event",
        action="append",
        default=[],
        metavar="NAME_PATTERN",
        help="only events with this name; '*' matches one or more characters (repeatable)",
    )
    p.add_argument(
        "--since",
        help="ISO 8601: start from events this old (default: the --state file's resume point, "
        "else --replay seconds ago)",
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        help="keep the resume point in FILE, so that a restarted bridge carries on where it "
        "stopped instead of from now",
    )
    p.add_argument("--batch-size", type=int, default=100, help="publish every N events")
    p.add_argument(
        "--flush-ms",
        type=int,
        default=500,
        help="publish waiting events at the latest after this many milliseconds",
    )
    p.add_argument(
        "--replay",
        type=float,
        default=60.0,
        help="on (re)connect, ask for events from this many seconds before the last one",
    )
    p.add_argument(
        "--max-backoff", type=float, default=30.0, help="longest wait between reconnects (s)"
    )
    p.add_argument("--log-json", action="store_true", help="JSON log lines")
    p.add_argument("--log-level", default="INFO", help="log level (default INFO)")
    p.set_defaults(handler=bridge_prefect)


def engine_publisher(stub: Any, *, timeout: float = 30.0) -> prefect_events.Publish:
    """Returns a ``Publish`` sending batches to the engine's ``EventService.PublishEvents``.

    Events the engine (or the client-side parse) rejects are logged and dropped: sending them
    again would fail the same way.
    """

    def publish(batch: Sequence[Mapping[str, Any]]) -> None:
        messages: list[event_pb2.Event] = []
        now = time.time()
        for item in batch:
            try:
                event = prefect_json.parse_event(item, now=now)
            except errors.InvalidArgument as exc:
                logger.warning("event %s not bridged: %s %s", item.get("id"), exc.reason, exc)
                continue
            messages.append(wire_events.event_to_proto(dataclasses.replace(event, received=0.0)))
        if not messages:
            return
        request = event_service_pb2.PublishEventsRequest(events=messages)
        try:
            reply = stub.PublishEvents(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise prefect_events.PublishError(
                common._explain(exc), retryable=exc.code() in RETRYABLE
            ) from None
        counts = {"accepted": 0, "duplicate": 0}
        for result in reply.results:
            if result.status == event_service_pb2.EVENT_STATUS_ACCEPTED:
                counts["accepted"] += 1
            elif result.status == event_service_pb2.EVENT_STATUS_DUPLICATE:
                counts["duplicate"] += 1
            else:
                logger.warning(
                    "event %s rejected by the engine: %s %s %s",
                    result.event_id,
                    result.reason,
                    result.field,
                    result.message,
                )
        logger.debug("published %s", counts)

    return publish


def bridge_prefect(args: argparse.Namespace) -> int:
    """Runs the bridge until SIGTERM or SIGINT; returns the exit status."""
    from automations import logs

    logs.configure(level=str(args.log_level).upper(), json_lines=bool(args.log_json))
    try:
        options = prefect_events.BridgeOptions(
            batch_size=args.batch_size,
            flush_interval=args.flush_ms / 1000,
            replay=args.replay,
            backoff_max=args.max_backoff,
        )
        since = prefect_json.parse_time(args.since, "--since") if args.since else None
        if not args.prefect_api_url:
            raise ValueError("--prefect-api-url (or PREFECT_API_URL) is required")
        channel = common._channel(args)
    except (ValueError, errors.InvalidArgument, common.CommandError, OSError) as exc:
        print(f"automations bridge prefect: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bridge = prefect_events.PrefectEventBridge(
        args.prefect_api_url,
        engine_publisher(event_service_pb2_grpc.EventServiceStub(channel)),
        event_patterns=args.event,
        auth_token=args.prefect_auth_token,
        since=since,
        options=options,
        state_path=args.state,
    )
    try:
        bridge.run(stop)
    except prefect_events.BridgeError as exc:
        logger.error("%s", exc)
        return 1
    finally:
        channel.close()
    logger.info("stopped after publishing %d events", bridge.published)
    return 0
