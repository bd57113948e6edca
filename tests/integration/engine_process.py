"""Starts the real engine (``automations serve``) as a child process on free local ports."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from automations.executors.supervisor import free_port
from bench import webhook_load

__all__ = ["EngineProcess", "free_port", "running_engine"]


class EngineProcess:
    """A running ``automations serve`` with its own SQLite file (or a given database URL)."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        bundled_executors: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.workdir = workdir
        self.credentials = credentials
        """TLS credentials for the readiness check (None: plaintext)."""
        self.bundled_executors = bundled_executors
        self.grpc_addr = f"127.0.0.1:{free_port()}"
        self.metrics_addr = f"127.0.0.1:{free_port()}"
        self.http_addr = f"127.0.0.1:{free_port()}"
        """Incoming webhooks (``--http-addr``; ``extra_args`` may name another)."""
        self.database_url = database_url or f"sqlite:///{workdir / 'automations.db'}"
        self.extra_args = extra_args
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "engine.log"
        self._log: Any = None

    def start(self, timeout: float = 60.0) -> EngineProcess:
        cmd = [
            sys.executable,
            "-m",
            "automations.cli.main",
            "serve",
            "--grpc-addr",
            self.grpc_addr,
            "--metrics-addr",
            self.metrics_addr,
            "--http-addr",
            self.http_addr,
            "--database-url",
            self.database_url,
            *(() if self.bundled_executors else ("--no-executors",)),
            *self.extra_args,
        ]
        env = {**os.environ, **self.env}
        self._close_log()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, stdout=self._log, stderr=self._log, env=env
        )
        try:
            self.wait_serving(timeout)
        except BaseException:
            # a failed start must not leak the log file: its ResourceWarning would surface
            # in whichever later test the garbage collector happens to run in
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._close_log()
            raise
        return self

    def wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.log()}")
            with (
                contextlib.suppress(grpc.RpcError),
                self.channel() as channel,
            ):
                stub = health_pb2_grpc.HealthStub(channel)
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"engine did not become SERVING in {timeout}s:\n{self.log()}")

    def channel(self) -> grpc.Channel:
        """A channel to the engine: TLS with ``credentials`` when given, else plaintext."""
        if self.credentials is None:
            return grpc.insecure_channel(self.grpc_addr)
        return grpc.secure_channel(self.grpc_addr, self.credentials)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def webhook_fronts(self) -> list[int]:
        """The pids of its webhook front processes (found as the benchmarks find them)."""
        assert self.proc is not None
        return webhook_load.fronts_of(self.proc.pid)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close_log()

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            tail = self.log()[-4000:]
            raise AssertionError(
                f"the engine did not exit within {timeout} s of SIGTERM; its log ends:\n{tail}"
            ) from None
        self._close_log()
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()


@contextlib.contextmanager
def running_engine(workdir: Path, **kwargs: object) -> Iterator[EngineProcess]:
    engine = EngineProcess(workdir, **kwargs)  # type: ignore[arg-type]
    try:
        yield engine.start()
    finally:
        engine.stop()


def serve_refused(
    database_url: str, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs ``automations serve`` that is expected to refuse to start; its exit code and output.

    Args:
        database_url: Its database.
        cwd: Its working directory.
        *args: More flags.
        env: Environment variables set beside this process's.
    """
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "automations.cli.main",
            "serve",
            "--no-executors",
            "--grpc-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "",
            "--database-url",
            database_url,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
