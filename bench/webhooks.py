"""Incoming webhooks: throughput against a ceiling on the same stack, latencies, and gRPC ingest.

Issue #20's figures, side by side in one run, each load from a process of its own on loopback:

* **throughput**: ``wrk`` (Debian's package) POSTs JSON bodies, each different, for ``--seconds``
  over 64 keep-alive connections to (a) a **ceiling**: uvicorn with httptools, the
  engine's stack and configuration, whose ``/hooks/{slug}`` reads the body and answers 204 with no
  work (``python -m bench.webhooks ceiling``), and (b) the **engine**'s ``/hooks/<slug>`` with a
  dynamic template (three values from the body and a header) whose events are committed to
  SQLite before each 204. Median of ``--runs`` runs, ceiling and engine alternated.
* **latency at 1,000 requests/s**: a constant-rate sender of its own (``python -m bench.webhooks
  rate``: raw HTTP/1.1 over keep-alive connections, each request timed from its *scheduled* send
  time, so a stall counts against the engine) for ``--seconds``: request -> 204 p50/p99, first
  with no automation (the webhook path alone), then with a threshold-1 automation on those events
  whose action goes to a recording executor in a process of its own (``python -m bench.webhooks
  record``). The request's send time travels in the body into the event's resource: request ->
  firing is the firing's ``triggered`` time (the commit that holds the firing, which precedes the
  204, starts then) minus the send time, and request -> action is the time the recording executor
  received the firing's action minus the send time. The CPU time the engine's process and its
  webhook front process spent per request is read from ``/proc`` around each run.
* **gRPC ingest** (``bench.loadgen``, as ``python -m bench ingest``) on the engine with its
  webhook endpoint off (``--http-addr ''``) and on, same run.

Run: python -m bench webhooks  (or python -m bench.webhooks all|ceiling|record|rate [options])
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench import harness
from bench import webhook_load as load

T = TypeVar("T")

TEMPLATE = (
    '{"event": "bench.hook", "resource": {"prefect.resource.id": "bench.{{ body.key }}", '
    '"bench.sent": "{{ body.t }}", "bench.agent": "{{ headers.get(\'user-agent\', \'?\') }}"}, '
    '"payload": {"n": {{ body.n|tojson }}}}'
)
"""A dynamic template: values from the body and a header, a payload of its own."""
TARGETS = {"rate": 5_000.0, "share": 0.40, "ack_p99_ms": 20.0, "firing_p99_ms": 25.0}
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
def _process(
    args: list[str], tmp: str, name: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log_path = Path(tmp) / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, *args], stdout=log, stderr=log, env=env or harness._env(), cwd=tmp
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
def ceiling_server() -> Iterator[tuple[str, int]]:
    """The ceiling in its own process; yields its ``/hooks/<slug>`` URL and its pid."""
    addr = f"127.0.0.1:{harness.free_port()}"
    with tempfile.TemporaryDirectory(prefix="automations-bench-") as tmp:
        with _process(["-m", "bench.webhooks", "ceiling", "--addr", addr], tmp, "ceiling") as proc:
            url = f"http://{addr}/hooks/{SLUG}"
            _wait_http(url, proc, Path(tmp) / "ceiling.log")
            yield url, proc.pid


@contextlib.contextmanager
def engine(*extra: str, source: Path | None = None) -> Iterator[tuple[str, int]]:
    """An engine process serving webhooks; yields (its gRPC address, its pid).

    ``source`` runs another checkout's engine (its ``src``), e.g. the code before a change.
    """
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
        with _process(args, tmp, "engine", harness.source_env(source)) as proc:
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
            yield grpc_addr, proc.pid


def _hook_url(grpc_addr: str) -> str:
    import automations

    with automations.Client(grpc_addr) as client:
        return str(client.create_webhook("bench", TEMPLATE)["url"])


class _Cpu:
    """The CPU time an engine's process and its front processes (together) spend in a block."""

    def __init__(self, pid: int) -> None:
        self._pids = (pid, *load.fronts_of(pid))

    def measure(self, fn: Callable[[], T]) -> tuple[T, float, float]:
        """``fn()``, and the engine's and its fronts' CPU seconds meanwhile."""
        before = [load.cpu_seconds(pid) for pid in self._pids]
        result = fn()
        spent = [load.cpu_seconds(pid) - was for pid, was in zip(self._pids, before, strict=True)]
        return result, spent[0], sum(spent[1:])


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


def _firing_delays(grpc_addr: str) -> list[float]:
    """Each firing's ``triggered`` time minus its request's send time, in milliseconds."""
    import automations

    with automations.Client(grpc_addr) as client:
        fired = client.list_firings()
    delays = []
    for firing in fired:
        sent = float(firing["triggering_event"]["resource"]["bench.sent"])
        triggered = datetime.datetime.fromisoformat(firing["triggered"]).timestamp()
        delays.append((triggered - sent) * 1000)
    return delays


def throughput_run(seconds: int, compare: Path | None = None) -> dict[str, float]:
    """Runs wrk against the ceiling, then the engine (and ``compare``'s engine, if given)."""
    with ceiling_server() as (url, ceiling_pid):
        before = load.cpu_seconds(ceiling_pid)
        ceiling = load.wrk(url, seconds)
        ceiling_cpu = load.cpu_seconds(ceiling_pid) - before
    figures = {
        "ceiling": ceiling["rate"],
        "sat_ceiling_us": ceiling_cpu / (ceiling["rate"] * seconds) * 1e6,
        **_engine_rate(seconds, None),
    }
    if compare is not None:
        other = _engine_rate(seconds, compare)
        figures["compared"] = other["engine"]
        figures["compared_share"] = other["engine"] / ceiling["rate"]
    figures["share"] = figures["engine"] / ceiling["rate"]
    return figures


def _engine_rate(seconds: int, source: Path | None) -> dict[str, float]:
    """Runs wrk against an engine's ``/hooks/<slug>``: requests/s and CPU per request."""
    with engine("--no-executors", source=source) as (grpc_addr, pid):
        url = _hook_url(grpc_addr)
        result, engine_cpu, front_cpu = _Cpu(pid).measure(lambda: load.wrk(url, seconds))
    requests = result["rate"] * seconds
    return {
        "engine": result["rate"],
        "engine_non_2xx": result["non_2xx"],
        "sat_engine_us": engine_cpu / requests * 1e6,
        "sat_front_us": front_cpu / requests * 1e6,
    }


def latency_run(seconds: float, source: Path | None = None) -> dict[str, float]:
    """Request -> 204, -> firing and -> action at 1,000 requests/s, one engine.

    ``source`` runs another checkout's engine (its ``src``).
    """
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
            engine(
                "--no-executors", "--executor", f"bench.noop={recorder_addr}", source=source
            ) as (grpc_addr, pid),
        ):
            url = _hook_url(grpc_addr)
            cpu = _Cpu(pid)
            constant_rate(url, 1000.0, 1)  # warm-up, before any automation
            plain, plain_engine, plain_front = cpu.measure(
                lambda: constant_rate(url, 1000.0, seconds)
            )
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
            result, fired_engine, fired_front = cpu.measure(
                lambda: constant_rate(url, 1000.0, seconds)
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                actions = [float(x) for x in calls.read_text().split()]
                if len(actions) >= result["statuses"].get("204", 0):
                    break
                time.sleep(0.2)
            firings = _firing_delays(grpc_addr)
    sent = float(result["sent"])
    return {
        "plain_p50_ms": plain["p50_ms"],
        "plain_p99_ms": plain["p99_ms"],
        "plain_engine_us": plain_engine / plain["sent"] * 1e6,
        "plain_front_us": plain_front / plain["sent"] * 1e6,
        "ack_p50_ms": result["p50_ms"],
        "ack_p99_ms": result["p99_ms"],
        "fired_engine_us": fired_engine / sent * 1e6,
        "fired_front_us": fired_front / sent * 1e6,
        "ok": float(result["statuses"].get("204", 0)),
        "sent": sent,
        "firings": float(len(firings)),
        "firing_p50_ms": _percentile(firings, 0.5),
        "firing_p99_ms": _percentile(firings, 0.99),
        "actions": float(len(actions)),
        "action_p50_ms": _percentile(actions, 0.5),
        "action_p99_ms": _percentile(actions, 0.99),
    }


def ingest_run(events: int, webhooks_on: bool) -> dict[str, float]:
    """``bench.loadgen`` (StreamEvents) against an engine with its webhook endpoint on or off."""
    http = [] if webhooks_on else ["--http-addr", ""]
    with engine("--no-executors", *http) as (grpc_addr, _):
        result = harness.loadgen(grpc_addr, events=events)
    assert result["accepted"] == events, result
    return {"rate": result["events_per_s"], "p99": result["ack_p99_ms"]}


def _spread(values: list[float], fmt: str) -> str:
    return "/".join(format(value, fmt) for value in values)


def run(
    runs: int = 3,
    seconds: int = 10,
    events: int = 200_000,
    ingest: bool = True,
    compare: Path | None = None,
) -> None:
    """Prints the figures (medians of ``runs``, each run's in parentheses).

    ``compare``: another checkout whose engine is measured too, in the same runs.
    """
    print(
        f"== webhooks: wrk -t1 -c64 {seconds}s POSTs, ceiling and engine alternated; "
        f"1,000 requests/s for {seconds}s; median of {runs} runs (each run's in parentheses)",
        flush=True,
    )
    figures: dict[str, list[float]] = {}
    for run_index in range(runs):
        for key, value in (
            *throughput_run(seconds, compare).items(),
            *latency_run(seconds).items(),
        ):
            figures.setdefault(key, []).append(value)
        if compare is not None:
            for key, value in latency_run(seconds, compare).items():
                figures.setdefault(f"compared_{key}", []).append(value)
        if ingest:
            for on in (False, True) if run_index % 2 == 0 else (True, False):  # no order bias
                result = ingest_run(events, on)
                figures.setdefault(f"ingest_{on}", []).append(result["rate"])
                figures.setdefault(f"ingest_p99_{on}", []).append(result["p99"])
        print(
            f"   run {run_index + 1}: ceiling {figures['ceiling'][-1]:,.0f}/s, engine "
            f"{figures['engine'][-1]:,.0f}/s; at 1,000/s ack p99 {figures['ack_p99_ms'][-1]:.1f} "
            f"ms, firing p99 {figures['firing_p99_ms'][-1]:.1f} ms",
            flush=True,
        )
    med = {key: statistics.median(values) for key, values in figures.items()}
    print(
        f"ceiling (uvicorn, routing, read body, 204):       {med['ceiling']:9,.0f} requests/s "
        f"({_spread(figures['ceiling'], ',.0f')})"
    )
    print(
        f"engine  (template, validate, SQLite commit, 204): {med['engine']:9,.0f} requests/s "
        f"({_spread(figures['engine'], ',.0f')}) = {med['share']:.0%} of the ceiling "
        f"({_spread([100 * s for s in figures['share']], '.0f')} %), non-2xx: "
        f"{med['engine_non_2xx']:.0f}"
    )
    print(
        f"   CPU per request at saturation: ceiling {med['sat_ceiling_us']:.0f} us; engine "
        f"{med['sat_engine_us']:.0f} us + its front processes {med['sat_front_us']:.0f} us"
    )
    print(
        f"at 1,000 requests/s, no automation: request -> 204 p50 {med['plain_p50_ms']:.1f} ms, "
        f"p99 {med['plain_p99_ms']:.1f} ms ({_spread(figures['plain_p99_ms'], '.1f')}); "
        f"CPU per request: engine {med['plain_engine_us']:.0f} us, "
        f"front {med['plain_front_us']:.0f} us"
    )
    print(
        f"at 1,000 requests/s, each firing a threshold-1 automation: request -> 204 p50 "
        f"{med['ack_p50_ms']:.1f} ms, p99 {med['ack_p99_ms']:.1f} ms "
        f"({_spread(figures['ack_p99_ms'], '.1f')}); request -> firing p50 "
        f"{med['firing_p50_ms']:.1f} ms, p99 {med['firing_p99_ms']:.1f} ms "
        f"({_spread(figures['firing_p99_ms'], '.1f')}); request -> action at its executor p50 "
        f"{med['action_p50_ms']:.1f} ms, p99 {med['action_p99_ms']:.1f} ms "
        f"({_spread(figures['action_p99_ms'], '.1f')}); {med['ok']:.0f}/{med['sent']:.0f} "
        f"answered 204, {med['firings']:.0f} firings, {med['actions']:.0f} actions; CPU per "
        f"request: engine {med['fired_engine_us']:.0f} us, front {med['fired_front_us']:.0f} us"
    )
    if compare is not None:
        print(
            f"the engine of {compare}, same runs: {med['compared']:,.0f} requests/s "
            f"({_spread(figures['compared'], ',.0f')}) = {med['compared_share']:.0%} of the "
            f"ceiling; at 1,000 requests/s request -> 204 p99 {med['compared_plain_p99_ms']:.1f} "
            f"ms without automation, {med['compared_ack_p99_ms']:.1f} ms with; request -> firing "
            f"p50 {med['compared_firing_p50_ms']:.1f} ms, p99 {med['compared_firing_p99_ms']:.1f} "
            f"ms ({_spread(figures['compared_firing_p99_ms'], '.1f')}); CPU per request at 1,000/s "
            f"with firings: {med['compared_fired_engine_us']:.0f} us"
        )
    if ingest:
        print(
            f"gRPC ingest (StreamEvents, {events} events): webhooks off "
            f"{med['ingest_False']:,.0f} events/s (ack p99 {med['ingest_p99_False']:.0f} ms), "
            f"webhooks on {med['ingest_True']:,.0f} events/s (ack p99 "
            f"{med['ingest_p99_True']:.0f} ms)"
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
    parser.add_argument("--no-ingest", action="store_true", help="skip the gRPC ingest runs")
    parser.add_argument(
        "--compare", type=Path, help="another checkout whose engine is measured in the same runs"
    )
    args = parser.parse_args()
    if args.what == "ceiling":
        load.serve_ceiling(args.addr)
    elif args.what == "record":
        load.serve_recorder(args.addr, args.out)
    elif args.what == "rate":
        result = asyncio.run(load.constant_rate(args.url, args.rate, args.seconds, connections=32))
        print(json.dumps(result))
    else:
        run(
            args.runs,
            int(args.seconds),
            args.events,
            ingest=not args.no_ingest,
            compare=args.compare,
        )


if __name__ == "__main__":
    main()
