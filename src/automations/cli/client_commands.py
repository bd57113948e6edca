"""Client commands: they talk to a running engine over gRPC and print text or JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_status import rpc_status

from automations import client, transport
from automations.domain import errors, prefect_json
from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from automations.wire import events as wire_events
from automations.wire import firings as wire_firings
from automations.wire import names, structs

T = TypeVar("T")


def _read_text(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text()


def _read_json(path: str) -> Any:
    return json.loads(_read_text(path))


def _token(args: argparse.Namespace) -> str | None:
    """The API token: ``--token``, else ``--token-file``, else ``AUTOMATIONS_API_TOKEN``."""
    given: str | None = getattr(args, "token", None)
    if given:
        print(
            "automations: --token is visible in the process list; prefer AUTOMATIONS_API_TOKEN "
            "or --token-file",
            file=sys.stderr,
        )
        return given
    path = getattr(args, "token_file", None)
    if path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise CommandError(f"--token-file {path}: {exc.strerror}") from None
        return lines[0].strip() if lines else None
    return os.environ.get("AUTOMATIONS_API_TOKEN") or None


def _channel(args: argparse.Namespace) -> grpc.Channel:
    """Opens the channel the client flags describe (``--tls``, ``--tls-ca``, ``--token``...)."""
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if bool(cert) != bool(key):
        raise CommandError("--tls-cert and --tls-key go together")
    return transport.open_channel(
        args.server,
        tls=bool(getattr(args, "tls", False)),
        root_certificates=transport.read_pem(getattr(args, "tls_ca", None)),
        private_key=transport.read_pem(key),
        certificate_chain=transport.read_pem(cert),
        token=_token(args),
        options=[
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20),
        ],
    )


def _explain(exc: grpc.RpcError) -> str:
    status = rpc_status.from_call(exc)
    text = f"{exc.code().name}: {exc.details()}"
    if status is not None:
        from google.rpc import error_details_pb2

        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                text += f" (reason {info.reason})"
    return text


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except grpc.RpcError as exc:
        raise CommandError(_explain(exc)) from None


class CommandError(Exception):
    """A failure to report on stderr with a non-zero exit."""


def _handle(body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except CommandError as exc:
            print(f"automations: {exc}", file=sys.stderr)
            return 1
        except errors.InvalidArgument as exc:
            print(f"automations: invalid input: {exc}", file=sys.stderr)
            return 2
        except (OSError, json.JSONDecodeError) as exc:
            print(f"automations: {exc}", file=sys.stderr)
            return 2

    return run


def _print(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    print(json.dumps(data, indent=2) if args.json else text(data))


def _automation_line(data: dict[str, Any]) -> str:
    state = "enabled" if data.get("enabled", True) else "disabled"
    return f"{data['id']}  {state:8}  {data['name']}"


def _automation_text(data: Any) -> str:
    if isinstance(data, list):
        return "\n".join(_automation_line(a) for a in data) or "(no automations)"
    return json.dumps(data, indent=2)


# ------------------------------------------------------------------------------------ automations


def _stub(args: argparse.Namespace) -> automation_service_pb2_grpc.AutomationServiceStub:
    return automation_service_pb2_grpc.AutomationServiceStub(_channel(args))


@_handle
def automation_create(args: argparse.Namespace) -> int:
    """``automation create FILE.json``: prints the new automation (with its id)."""
    data = _read_json(args.file)
    prefect_json.parse_automation(data)  # the same checks as the server, before any network call
    request = automation_service_pb2.CreateAutomationRequest(
        automation=wire_automations.automation_proto_from_prefect_json(data)
    )
    created = _call(lambda: _stub(args).CreateAutomation(request))
    _print(args, wire_automations.automation_to_prefect_json(created), _automation_text)
    return 0


@_handle
def automation_update(args: argparse.Namespace) -> int:
    """``automation update ID FILE.json``: replaces the automation's definition."""
    data = _read_json(args.file)
    prefect_json.parse_automation(data)
    message = wire_automations.automation_proto_from_prefect_json(data)
    message.name = f"automations/{args.id}"
    message.etag = ""
    request = automation_service_pb2.UpdateAutomationRequest(automation=message)
    updated = _call(lambda: _stub(args).UpdateAutomation(request))
    _print(args, wire_automations.automation_to_prefect_json(updated), _automation_text)
    return 0


@_handle
def automation_get(args: argparse.Namespace) -> int:
    """``automation get ID``."""
    request = automation_service_pb2.GetAutomationRequest(name=f"automations/{args.id}")
    found = _call(lambda: _stub(args).GetAutomation(request))
    _print(args, wire_automations.automation_to_prefect_json(found), _automation_text)
    return 0


@_handle
def automation_list(args: argparse.Namespace) -> int:
    """``automation list [--limit N]``."""
    stub = _stub(args)

    def fetch(token: str, size: int) -> tuple[list[Any], str]:
        reply = _call(
            lambda: stub.ListAutomations(
                automation_service_pb2.ListAutomationsRequest(page_size=size, page_token=token)
            )
        )
        return list(reply.automations), reply.next_page_token

    found = [
        wire_automations.automation_to_prefect_json(a) for a in client.pages(fetch, args.limit)
    ]
    _print(args, found, _automation_text)
    return 0


@_handle
def automation_delete(args: argparse.Namespace) -> int:
    """``automation delete ID``."""
    request = automation_service_pb2.DeleteAutomationRequest(name=f"automations/{args.id}")
    _call(lambda: _stub(args).DeleteAutomation(request))
    _print(args, {"deleted": args.id}, lambda d: f"deleted {d['deleted']}")
    return 0


@_handle
def automation_enable(args: argparse.Namespace) -> int:
    """``automation enable ID``."""
    request = automation_service_pb2.EnableAutomationRequest(name=f"automations/{args.id}")
    found = _call(lambda: _stub(args).EnableAutomation(request))
    _print(args, wire_automations.automation_to_prefect_json(found), _automation_text)
    return 0


@_handle
def automation_disable(args: argparse.Namespace) -> int:
    """``automation disable ID``."""
    request = automation_service_pb2.DisableAutomationRequest(name=f"automations/{args.id}")
    found = _call(lambda: _stub(args).DisableAutomation(request))
    _print(args, wire_automations.automation_to_prefect_json(found), _automation_text)
    return 0


# ----------------------------------------------------------------------------------------- events


def _read_events(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise errors.InvalidArgument(f"line {lineno}", f"not JSON: {exc}") from None
            if isinstance(data, dict) and "id" not in data:
                data["id"] = str(uuid.uuid4())
            yield lineno, data


@_handle
def events_publish(args: argparse.Namespace) -> int:
    """``events publish FILE.jsonl``: exit 0 only when every event is acknowledged."""
    stub = event_service_pb2_grpc.EventServiceStub(_channel(args))
    lines = list(_read_events(args.file))
    rejected: list[str] = []
    accepted = duplicate = 0
    now = time.time()
    for start in range(0, len(lines), max(1, args.batch_size)):
        chunk = lines[start : start + args.batch_size]
        messages = []
        chunk_lines = []
        for lineno, data in chunk:
            try:
                event = prefect_json.parse_event(data, now=now)
            except errors.InvalidArgument as exc:
                rejected.append(f"line {lineno} ({data.get('id', '?')}): {exc.reason} {exc}")
                continue
            messages.append(wire_events.event_to_proto(dataclasses.replace(event, received=0.0)))
            chunk_lines.append(lineno)
        if not messages:
            continue
        reply = _publish_with_retry(stub, messages)
        for result in reply.results:
            if result.status == event_service_pb2.EVENT_STATUS_ACCEPTED:
                accepted += 1
            elif result.status == event_service_pb2.EVENT_STATUS_DUPLICATE:
                duplicate += 1
            else:
                where = f"{result.field}: " if result.field else ""
                rejected.append(
                    f"line {chunk_lines[result.index]} ({result.event_id}): {result.reason} "
                    f"{where}{result.message}"
                )
    summary = {"accepted": accepted, "duplicate": duplicate, "rejected": rejected}
    _print(
        args,
        summary,
        lambda s: (
            f"accepted {s['accepted']}, duplicate {s['duplicate']}, rejected {len(s['rejected'])}"
        ),
    )
    for line in rejected:
        print(f"rejected: {line}", file=sys.stderr)
    return 1 if rejected else 0


def _publish_with_retry(
    stub: event_service_pb2_grpc.EventServiceStub, messages: list[Any]
) -> event_service_pb2.PublishEventsResponse:
    delay = 0.05
    for attempt in range(8):
        try:
            reply: event_service_pb2.PublishEventsResponse = stub.PublishEvents(
                event_service_pb2.PublishEventsRequest(events=messages), timeout=60
            )
            return reply
        except grpc.RpcError as exc:
            code = exc.code()
            if (
                code not in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
                or attempt == 7
            ):
                raise CommandError(_explain(exc)) from None
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


@_handle
def events_list(args: argparse.Namespace) -> int:
    """``events list [--name P] [--resource ID] [--since T] [--until T] [--limit N]``."""
    stub = event_service_pb2_grpc.EventServiceStub(_channel(args))
    request = event_service_pb2.ListEventsRequest(event_names=args.name, resource_ids=args.resource)
    if args.since:
        request.start_time.CopyFrom(
            structs.seconds_to_timestamp(prefect_json.parse_time(args.since, "--since"))
        )
    if args.until:
        request.end_time.CopyFrom(
            structs.seconds_to_timestamp(prefect_json.parse_time(args.until, "--until"))
        )

    def fetch(token: str, size: int) -> tuple[list[Any], str]:
        request.page_token = token
        request.page_size = size
        reply = _call(lambda: stub.ListEvents(request))
        return list(reply.events), reply.next_page_token

    found = [
        prefect_json.dump_event(
            wire_events.event_from_proto(e, received=structs.timestamp_to_seconds(e.received))
        )
        for e in client.pages(fetch, args.limit)
    ]
    _print(
        args,
        found,
        lambda items: (
            "\n".join(
                f"{e['occurred']}  {e['event']}  {e['resource'].get('prefect.resource.id', '')}  {e['id']}"
                for e in items
            )
            or "(no events)"
        ),
    )
    return 0


# ---------------------------------------------------------------------------------------- firings


@_handle
def firings_list(args: argparse.Namespace) -> int:
    """``firings list [--automation ID] [--limit N]``."""
    stub = _stub(args)
    parent = f"automations/{args.automation}" if args.automation else ""

    def fetch(token: str, size: int) -> tuple[list[Any], str]:
        reply = _call(
            lambda: stub.ListFirings(
                automation_service_pb2.ListFiringsRequest(
                    parent=parent, page_size=size, page_token=token
                )
            )
        )
        return list(reply.firings), reply.next_page_token

    found = [_firing_json(f) for f in client.pages(fetch, args.limit)]
    _print(
        args,
        found,
        lambda items: (
            "\n".join(
                f"{f['triggered']}  {f['automation_id']}  event={f['triggering_event_id'] or '-'}  "
                f"labels={json.dumps(f['triggering_labels'])}"
                + ("" if f["state"] == "Triggered" else f"  {f['state']}")
                + ("" if f["triggering_value"] is None else f"  value={f['triggering_value']:g}")
                for f in items
            )
            or "(no firings)"
        ),
    )
    return 0


@_handle
def firings_get(args: argparse.Namespace) -> int:
    """``firings get ID [--automation ID]``: one firing, with its triggering event."""
    automation = args.automation or names.ANY_AUTOMATION
    request = automation_service_pb2.GetFiringRequest(name=names.firing_name(automation, args.id))
    found = wire_firings.firing_to_json(_call(lambda: _stub(args).GetFiring(request)))
    _print(args, found, lambda f: json.dumps(f, indent=2))
    return 0


def _firing_json(firing: Any) -> dict[str, Any]:
    shown = wire_firings.firing_to_json(firing)  # for the state and the metric's value
    return {
        "id": firing.uid,
        "automation_id": firing.automation.split("/", 1)[-1],
        "trigger_id": firing.trigger_id,
        "triggered": prefect_json.iso_time(structs.timestamp_to_seconds(firing.fire_time)),
        "triggering_event_id": firing.triggering_event_id or None,
        "triggering_labels": dict(firing.triggering_labels),
        "child_firings": [_firing_json(child) for child in firing.child_firings],
        "state": shown["state"],
        "triggering_value": shown["triggering_value"],
    }
