"""The load and the servers beside the engine in ``bench.webhooks``, each run in a process of its own.

``wrk`` (Debian's package) for throughput; a constant-rate sender of its own for latency (raw
HTTP/1.1 over keep-alive connections, each request timed from its *scheduled* send time, so a
stall counts against the server; the send time travels in the body); the ceiling server (the
engine's HTTP plumbing answering 204 with no work); a recording executor; and the CPU time of a
process and of the webhook front processes it started, read from ``/proc``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local body = '{"key": "k' .. counter .. '", "n": ' .. counter .. ', "t": 0}'
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
"""

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
    """The engine's HTTP plumbing with no work: uvicorn (httptools, the engine's settings), the
    engine's routing (``http_app.route``), the body read and the 204 sent as the engine does."""
    from automations.webhooks import http_app, receiver

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if http_app.route(scope["path"]) is None:
            await http_app.no_route(send)
            return
        await http_app.read_body(receive, http_app.DEFAULT_MAX_BODY_BYTES)
        await http_app.send_answer(receiver.NO_CONTENT, send)

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


async def constant_rate(url: str, rate: float, seconds: float, connections: int) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------- CPU time

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """The user + system CPU time of a running process, in seconds (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def fronts_of(pid: int) -> list[int]:
    """The pids of the webhook front processes the engine ``pid`` started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"webhooks.front" in cmdline:
            found.append(int(entry.name))
    return found
