"""Incoming webhooks: throughput against a ceiling on the same stack, latencies, and gRPC ingest.

Issue #20's figures, side by side in one run, each load from a process of its own on loopback:

* **throughput**: ``wrk`` (Debian's package) POSTs JSON bodies, each different, for ``--seconds``
  over 64 keep-alive connections to (a) a **ceiling**: uvicorn + Starlette with httptools, the
  engine's stack and configuration, whose ``/hooks/{slug}`` reads the body and answers 204 with no
  work (``python -m bench.webhooks ceiling``), and (b) the **engine**'s ``/hooks/<slug>`` with a
  dynamic template (three values from the body and a header) whose events are committed to
  SQLite before each 204. Median of ``--runs`` runs, ceiling and engine alternated.
* **latency at 1,000 requests/s**: a constant-rate sender of its own (``python -m bench.webhooks
  rate``: raw HTTP/1.1 over keep-alive connections, each request timed from its *scheduled* send
  time, so a stall counts against the engine) for 10 s: request -> 204 p50/p99, first with no
  automation (the webhook path alone), then with a threshold-1 automation on those events whose
  action goes to a recording executor in a process of its own (``python -m bench.webhooks
  record``); the request's send time travels in the body
  into the event's resource, and the executor records receive time minus send time: request ->
  firing p50/p99, the firing's action having reached its executor (an upper bound of request ->
  firing committed, which precedes the 204).
* **gRPC ingest** (``bench.loadgen``, as ``python -m bench ingest``) on the engine with its
  webhook endpoint off (``--http-addr ''``) and on, same run.

Run: python -m bench webhooks  (or python -m bench.webhooks all|ceiling|record|rate [options])
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import harness

TEMPLATE = (
    '{"event": "bench.hook", "resource": {"prefect.resource.id": "bench.{{ body.key }}", '
    '"bench.sent": "{{ body.t }}", "bench.agent": "{{ headers.get(\'user-agent\', \'?\') }}"}, '
    '"payload": {"n": {{ body.n|tojson }}}}'
)
"""A dynamic template: values from the body and a header, a payload of its own."""
TARGETS = {"rate": 5_000.0, "share": 0.40, "ack_p99_ms": 20.0, "firing_p99_ms": 25.0}
WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"key": "k' .. counter .. '", "n": ' .. counter .. ', "t": 0}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
"""
SLUG = "bench-ceiling-slug"


# ----------------------------------------------------------------------------- processes


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer:\n{log.read_text()}")


@contextlib.contextmanager
def _process(args: list[str], tmp: str, name: str) -> Iterator[subprocess.Popen[bytes]]:
    log_path = Path(tmp) / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, *args], stdout=log, stderr=log, env=harness._env(), cwd=tmp
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def ceiling_server() -> Iterator[str]:
    """The ceiling in its own process; yields its ``/hooks/<slug>`` URL."""
    addr = f"127.0.0.1:{harness.free_port()}"
    with tempfile.TemporaryDirectory(prefix="automations-bench-") as tmp:
        with _process(["-m", "bench.webhooks", "ceiling", "--addr", addr], tmp, "ceiling") as proc:
            url = f"http://{addr}/hooks/{SLUG}"
            _wait_http(url, proc, Path(tmp) / "ceiling.log")
            yield url


@contextlib.contextmanager
def engine(*extra: str) -> Iterator[tuple[str, str]]:
    """An engine process serving webhooks; yields (gRPC address, HTTP address)."""
    grpc_addr = f"127.0.0.1:{harness.free_port()}"
    http_addr = f"127.0.0.1:{harness.free_port()}"
    with tempfile.TemporaryDirectory(prefix="automations-bench-") as tmp:
        args = [
            "-m",
            "automations.cli.main",
            "serve",
            "--grpc-addr",
            grpc_addr,
            "--metrics-addr",
            f"127.0.0.1:{harness.free_port()}",
            "--http-addr",
            http_addr,
            "--database-url",
            f"sqlite:///{tmp}/bench.db",
            *extra,
        ]
        with _process(args, tmp, "engine") as proc:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((Path(tmp) / "engine.log").read_text())
                with (
                    contextlib.suppress(grpc.RpcError),
                    grpc.insecure_channel(grpc_addr) as channel,
                ):
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                time.sleep(0.2)
            yield grpc_addr, http_addr


def _hook_url(grpc_addr: str) -> str:
    import automations

    with automations.Client(grpc_addr) as client:
        return str(client.create_webhook("bench", TEMPLATE)["url"])


# ----------------------------------------------------------------------------- wrk


def wrk(url: str, seconds: int, connections: int = 64) -> dict[str, float]:
    """Runs wrk against ``url``; returns requests/s, non-2xx answers and latency percentiles."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            script.name,
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    Path(script.name).unlink()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {
        "rate": rate,
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
    }


# ----------------------------------------------------------------------------- ceiling server


def serve_ceiling(addr: str) -> None:
    """The engine's HTTP plumbing with no work: uvicorn (httptools, the engine's settings),
    Starlette's router, an ASGI endpoint reading the body through Starlette's request, a 204."""
    from starlette.requests import Request
    from starlette.routing import Route, Router
    from starlette.types import Receive, Scope, Send

    from automations.webhooks import http_app

    class Endpoint:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            async for _ in request.stream():
                pass
            headers = [(b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})

    app = Router(routes=[Route("/hooks/{slug}", Endpoint())])

    async def main() -> None:
        server = http_app.HttpServer(app, http_app.bind(addr), shutdown_grace_seconds=1)
        await server.start()
        await asyncio.Event().wait()

    asyncio.run(main())


# ----------------------------------------------------------------------------- recording executor


def serve_recorder(addr: str, out_path: str) -> None:
    """An ExecutorService that writes, per invocation, receive time minus the request's send time
    (the event's ``bench.sent`` label) in milliseconds."""
    from grpc_health.v1 import health

    from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc

    out = open(out_path, "a", buffering=1)  # noqa: SIM115 - open for the process's life

    def record(received: float, one: Any) -> None:
        sent = one.triggering_event.resource.labels.get("bench.sent", "0")
        out.write(f"{(received - float(sent)) * 1000:.3f}\n")

    class Recorder(executor_service_pb2_grpc.ExecutorServiceServicer):
        async def ExecuteAction(self, request: Any, context: Any) -> Any:  # noqa: N802
            record(time.time(), request)
            return executor_service_pb2.ExecuteActionResponse()

        async def ExecuteActions(self, request: Any, context: Any) -> Any:  # noqa: N802
            received = time.time()
            response = executor_service_pb2.ExecuteActionsResponse()
            for one in request.requests:
                record(received, one)
                response.results.add().status.code = 0
            return response

    async def main() -> None:
        server = grpc.aio.server()
        executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(Recorder(), server)
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(addr)
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


# ----------------------------------------------------------------------------- constant rate


async def _constant_rate(url: str, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    """Sends ``rate`` requests/s for ``seconds``; each timed from its scheduled send time."""
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert match is not None
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    total = int(rate * seconds)
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while True:
            item = await queue.get()
            if item is None:
                writer.close()
                return
            n, scheduled = item
            body = json.dumps({"key": f"k{n}", "n": n, "t": repr(scheduled)}).encode()
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if length and int(length.group(1)):
                await reader.readexactly(int(length.group(1)))
            latencies.append((time.time() - scheduled) * 1000)
            statuses[status] = statuses.get(status, 0) + 1

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.time() + 0.2
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((n, scheduled))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    latencies.sort()
    return {
        "sent": total,
        "statuses": statuses,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "max_ms": latencies[-1],
    }


def constant_rate(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """Runs the constant-rate sender in its own process; returns its JSON."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.webhooks",
            "rate",
            "--url",
            url,
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=harness._env(),
        cwd=harness.ROOT,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------- the figures


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def latency_run(seconds: float) -> dict[str, float]:
    """Request -> 204 and request -> firing at 1,000 requests/s, one engine."""
    import automations

    with tempfile.TemporaryDirectory(prefix="automations-bench-") as tmp:
        recorder_addr = f"127.0.0.1:{harness.free_port()}"
        calls = Path(tmp) / "calls.txt"
        calls.touch()
        with (
            _process(
                ["-m", "bench.webhooks", "record", "--addr", recorder_addr, "--out", str(calls)],
                tmp,
                "recorder",
            ),
            engine("--no-executors", "--executor", f"bench.noop={recorder_addr}") as (grpc_addr, _),
        ):
            url = _hook_url(grpc_addr)
            plain = constant_rate(url, 1000.0, seconds)  # no automation: the webhook path alone
            with automations.Client(grpc_addr) as client:
                client.create_automation(
                    {
                        "name": "bench threshold 1",
                        "trigger": {
                            "type": "event",
                            "expect": ["bench.hook"],
                            "posture": "Reactive",
                            "threshold": 1,
                            "within": 0,
                        },
                        "actions": [{"type": "bench.noop"}],
                    }
                )
            result = constant_rate(url, 1000.0, seconds)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                firings = [float(x) for x in calls.read_text().split()]
                if len(firings) >= result["statuses"].get("204", 0):
                    break
                time.sleep(0.2)
    return {
        "plain_p50_ms": plain["p50_ms"],
        "plain_p99_ms": plain["p99_ms"],
        "ack_p50_ms": result["p50_ms"],
        "ack_p99_ms": result["p99_ms"],
        "ok": float(result["statuses"].get("204", 0)),
        "sent": float(result["sent"]),
        "firings": float(len(firings)),
        "firing_p50_ms": _percentile(firings, 0.5),
        "firing_p99_ms": _percentile(firings, 0.99),
    }


def ingest_run(events: int, webhooks_on: bool) -> dict[str, float]:
    """``bench.loadgen`` (StreamEvents) against an engine with its webhook endpoint on or off."""
    http = [] if webhooks_on else ["--http-addr", ""]
    with engine("--no-executors", *http) as (grpc_addr, _):
        result = harness.loadgen(grpc_addr, events=events)
    assert result["accepted"] == events, result
    return {"rate": result["events_per_s"], "p99": result["ack_p99_ms"]}


def run(runs: int = 3, seconds: int = 10, events: int = 200_000) -> None:
    """Prints the figures (medians of ``runs``)."""
    print(
        f"== webhooks: wrk -t1 -c64 {seconds}s POSTs, ceiling and engine alternated; "
        f"1,000 requests/s for {seconds}s; median of {runs} runs"
    )
    figures: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    for run_index in range(runs):
        with ceiling_server() as url:
            add("ceiling", wrk(url, seconds)["rate"])
        with engine("--no-executors") as (grpc_addr, _):
            result = wrk(_hook_url(grpc_addr), seconds)
            add("engine", result["rate"])
            add("engine_non_2xx", result["non_2xx"])
        for key, value in latency_run(seconds).items():
            add(key, value)
        for on in (False, True) if run_index % 2 == 0 else (True, False):  # no order bias
            result = ingest_run(events, on)
            add(f"ingest_{on}", result["rate"])
            add(f"ingest_p99_{on}", result["p99"])
    med = {key: statistics.median(values) for key, values in figures.items()}
    print(f"ceiling (uvicorn + Starlette, read body, 204):   {med['ceiling']:9,.0f} requests/s")
    print(
        f"engine  (template, validate, SQLite commit, 204): {med['engine']:9,.0f} requests/s"
        f" = {med['engine'] / med['ceiling']:.0%} of the ceiling (non-2xx: {med['engine_non_2xx']:.0f})"
    )
    print(
        f"at 1,000 requests/s, no automation: request -> 204 p50 {med['plain_p50_ms']:.1f} ms, "
        f"p99 {med['plain_p99_ms']:.1f} ms"
    )
    print(
        f"at 1,000 requests/s, each firing a threshold-1 automation: request -> 204 p50 "
        f"{med['ack_p50_ms']:.1f} ms, p99 "
        f"{med['ack_p99_ms']:.1f} ms; request -> firing (action at its executor) p50 "
        f"{med['firing_p50_ms']:.1f} ms, p99 {med['firing_p99_ms']:.1f} ms "
        f"({med['ok']:.0f}/{med['sent']:.0f} answered 204, {med['firings']:.0f} firings)"
    )
    print(
        f"gRPC ingest (StreamEvents, {events} events): webhooks off {med['ingest_False']:,.0f} "
        f"events/s (ack p99 {med['ingest_p99_False']:.0f} ms), webhooks on "
        f"{med['ingest_True']:,.0f} events/s (ack p99 {med['ingest_p99_True']:.0f} ms)"
    )
    print(
        f"targets: >= {TARGETS['rate']:,.0f} requests/s and >= {TARGETS['share']:.0%} of the "
        f"ceiling; p99 request -> 204 <= {TARGETS['ack_p99_ms']:.0f} ms and request -> firing "
        f"<= {TARGETS['firing_p99_ms']:.0f} ms at 1,000 requests/s; ingest unchanged"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks")
    parser.add_argument(
        "what", nargs="?", default="all", choices=["all", "ceiling", "record", "rate"]
    )
    parser.add_argument("--addr")
    parser.add_argument("--out")
    parser.add_argument("--url")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    if args.what == "ceiling":
        serve_ceiling(args.addr)
    elif args.what == "record":
        serve_recorder(args.addr, args.out)
    elif args.what == "rate":
        result = asyncio.run(_constant_rate(args.url, args.rate, args.seconds, connections=32))
        print(json.dumps(result))
    else:
        run(args.runs, int(args.seconds), args.events)


if __name__ == "__main__":
    main()
