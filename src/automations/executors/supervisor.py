"""Runs the bundled executors as child processes of the engine (unless ``--no-executors``).

Each bundled executor is its own process and gRPC server (``automations executor NAME``), started
on a free local port with ``AUTOMATIONS_PARENT_PID`` so that it stops if the engine dies, and
waited for until its health service answers SERVING. Their idempotency records live in
``state_dir``, so an executor started by the next run of the engine still knows what the previous
one did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from automations import executor
from automations.executors import registry

logger = logging.getLogger(__name__)

DEFAULT_BUNDLED = ("webhook", "notify")
"""The bundled executors ``serve`` starts."""


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1, never the same twice in this process.

    The kernel may give a port it just gave back to the next ``bind(0)``. gRPC servers bind with
    SO_REUSEPORT, so two of them (two bundled executors, or the engine's gRPC and metrics ports
    in the tests and benchmarks) would then share one port instead of failing.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def state_dir_for(database_url: str, configured: str) -> Path:
    """Where the executors' idempotency files go.

    As configured, else beside a SQLite database file, else ``./automations-executors``.
    """
    if configured:
        return Path(configured)
    prefix = "sqlite:///"
    if database_url.startswith(prefix) and ":memory:" not in database_url:
        return Path(database_url[len(prefix) :].split("?", 1)[0]).resolve().parent
    return Path("automations-executors").resolve()


async def _wait_serving(address: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"exited with status {process.returncode} while starting")
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not SERVING after {timeout:.0f} s")
            await asyncio.sleep(0.05)


def executor_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a bundled executor starts with: the engine's, without its settings.

    Every ``AUTOMATIONS_*`` variable is the engine's configuration (its API token, its database
    URL with a password, TLS key files): an executor is configured by its command line and never
    needs them, so a compromised executor cannot read them from its environment.
    """
    return {key: value for key, value in environ.items() if not key.startswith("AUTOMATIONS_")}


class BundledExecutors:
    """The bundled executor processes of one engine.

    Args:
        names: Which bundled executors to run (keys of ``executors.registry.EXECUTORS``).
        state_dir: Directory of their idempotency files.
        log_json: Pass ``--log-json`` on.
        extra_args: More command-line arguments per executor name.
    """

    def __init__(
        self,
        names: Iterable[str],
        *,
        state_dir: Path,
        log_json: bool = False,
        extra_args: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._names = tuple(names)
        self._state_dir = state_dir
        self._log_json = log_json
        self._extra_args = dict(extra_args or {})
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    async def start(self, *, timeout: float = 30.0) -> dict[str, str]:
        """Starts every executor and waits until each serves.

        Returns:
            Action type -> address, for every type a started executor serves.

        Raises:
            RuntimeError: An executor did not start (its name and why).
        """
        self._state_dir.mkdir(parents=True, exist_ok=True)
        env = {**executor_environment(os.environ), executor.PARENT_PID_ENV: str(os.getpid())}
        addresses: dict[str, str] = {}
        for name in self._names:
            address = f"127.0.0.1:{free_port()}"
            command = [
                sys.executable,
                "-m",
                "automations.cli.main",
                "executor",
                name,
                "--addr",
                address,
                "--state",
                str(self._state_dir / f"automations-executor-{name}.db"),
            ]
            if self._log_json:
                command.append("--log-json")
            command.extend(self._extra_args.get(name, ()))
            self._processes[name] = subprocess.Popen(command, env=env)
            addresses[name] = address
        routes: dict[str, str] = {}
        for name, address in addresses.items():
            try:
                await _wait_serving(address, self._processes[name], timeout)
            except RuntimeError as exc:
                await self.stop()
                raise RuntimeError(f"bundled executor {name!r} {exc}") from None
            for action_type in registry.ACTION_TYPES.get(name, ()):
                routes[action_type] = address
            logger.info("bundled executor serving", extra={"executor": name, "address": address})
        return routes

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stops every executor (SIGTERM: they finish in-flight calls), killing laggards."""
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self._processes.values():
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        self._processes.clear()


def merged_routes(bundled: Mapping[str, str], configured: Mapping[str, str]) -> dict[str, str]:
    """Bundled routes overridden by configured ones (``--executor TYPE=HOST:PORT``)."""
    return {**bundled, **configured}
