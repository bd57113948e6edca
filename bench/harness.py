"""Starts the servers under test as child processes and runs the load generator against them."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from automations.executors.supervisor import free_port

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextlib.contextmanager
def ceiling() -> Iterator[str]:
    addr = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.ceiling_server", "--addr", addr],
        stdout=subprocess.PIPE,
        env=_env(),
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        yield addr
    finally:
        proc.kill()
        proc.wait()


@dataclasses.dataclass(frozen=True)
class Served:
    """An engine process started by :func:`serve`: its addresses, process and working directory."""

    addr: str
    metrics_addr: str
    proc: subprocess.Popen[bytes]
    tmp: str


@contextlib.contextmanager
def serve(
    *args: str,
    extra_env: dict[str, str] | None = None,
    workdir: str | None = None,
    source: Path | None = None,
) -> Iterator[Served]:
    """``automations serve`` on SQLite (no bundled executors) until the block ends, once SERVING.

    Args:
        args: More ``serve`` arguments (``--executor``, ...).
        extra_env: Environment on top of the harness's.
        workdir: Where the database and ``engine.log`` go (a temporary directory by default).
        source: Another checkout whose ``src`` is run, e.g. the code before a change.
    """
    env = source_env(source)
    with contextlib.ExitStack() as stack:
        tmp = workdir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="automations-bench-")
        )
        addr = f"127.0.0.1:{free_port()}"
        metrics_addr = f"127.0.0.1:{free_port()}"
        log_path = Path(tmp) / "engine.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "automations.cli.main",
                    "serve",
                    "--grpc-addr",
                    addr,
                    "--metrics-addr",
                    metrics_addr,
                    "--database-url",
                    f"sqlite:///{tmp}/bench.db",
                    "--no-executors",
                    *args,
                ],
                stdout=log,
                stderr=log,
                env={**env, **(extra_env or {})},
                cwd=tmp,
            )
        try:
            wait_serving(addr, proc, log_path)
            yield Served(addr, metrics_addr, proc, tmp)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def engine(
    extra_env: dict[str, str] | None = None,
    workdir: str | None = None,
    source: Path | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`serve` with nothing more; yields (its gRPC address, its process)."""
    with serve(extra_env=extra_env, workdir=workdir, source=source) as served:
        yield served.addr, served.proc


def wait_serving(addr: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Waits up to 60 s until ``addr`` answers SERVING; raises with the log if the process ends."""
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log_path.read_text())
        with contextlib.suppress(grpc.RpcError), grpc.insecure_channel(addr) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        time.sleep(0.1)


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_now_mb(pid: int) -> float:
    """The process's resident memory now (``rss_mb`` is its peak)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def tree_rss_now_mb(pid: int) -> float:
    """Resident memory now of ``pid`` and its child processes (the rete's worker), in MB."""
    total = rss_now_mb(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        for child in children.read_text().split():
            total += rss_now_mb(int(child))
    return total


def source_env(source: Path | None) -> dict[str, str]:
    """The environment of an engine run from ``source``'s ``src`` (this checkout's when None).

    Webhooks get a free port (an env setting, which an engine without webhooks ignores).
    """
    env = {**_env(), "AUTOMATIONS_HTTP_ADDR": f"127.0.0.1:{free_port()}"}
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join((str(source / "src"), env["PYTHONPATH"]))
    return env


def loadgen(addr: str, **options: Any) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.loadgen", "--addr", addr]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        args += [flag] if value is True else [flag, str(value)]
    out = subprocess.run(args, check=True, capture_output=True, env=_env(), cwd=ROOT, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
