"""Runs a real ``automations executor NAME`` process and a real local HTTP receiver."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc
from tests.integration.engine_process import free_port


class ExecutorProcess:
    """``automations executor NAME`` on a free port, logging to a file in ``workdir``."""

    def __init__(
        self,
        name: str,
        workdir: Path,
        *,
        args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.workdir = workdir
        self.addr = f"127.0.0.1:{free_port()}"
        self.state = workdir / f"{name}.db"
        self.args = args
        self.env = dict(env or {})
        self.log_path = workdir / f"executor-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ExecutorProcess:
        self.spawn()
        self.wait_serving(timeout)
        return self

    def spawn(self) -> subprocess.Popen[bytes]:
        script = Path(sys.executable).with_name("automations")
        command = (
            [str(script)] if script.exists() else [sys.executable, "-m", "automations.cli.main"]
        )
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *command,
                    "executor",
                    self.name,
                    "--addr",
                    self.addr,
                    "--state",
                    str(self.state),
                    *self.args,
                ],
                cwd=self.workdir,
                stdout=log,
                stderr=log,
                env={**os.environ, **self.env},
            )
        return self.proc

    def wait_serving(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.addr) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"executor exited with {self.proc.returncode}:\n{self.log()}"
                    )
                with contextlib.suppress(grpc.RpcError):
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                time.sleep(0.05)
        raise TimeoutError(f"executor not SERVING after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @contextlib.contextmanager
    def stub(self) -> Iterator[executor_service_pb2_grpc.ExecutorServiceStub]:
        with grpc.insecure_channel(self.addr) as channel:
            yield executor_service_pb2_grpc.ExecutorServiceStub(channel)


@contextlib.contextmanager
def running_executor(name: str, workdir: Path, **kwargs: Any) -> Iterator[ExecutorProcess]:
    proc = ExecutorProcess(name, workdir, **kwargs)
    try:
        yield proc.start()
    finally:
        proc.stop()


def request(
    action_type: str, key: str, parameters: Mapping[str, Any] | None = None
) -> executor_service_pb2.ExecuteActionRequest:
    req = executor_service_pb2.ExecuteActionRequest(
        action_type=action_type, idempotency_key=key, attempt=1, action_index=0
    )
    req.automation.name = "automations/a1"
    req.automation.uid = "a1"
    req.automation.display_name = "test automation"
    req.firing.uid = "f1"
    if parameters is not None:
        req.parameters.update(parameters)
    return req


@dataclass
class Failure:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    metadata: dict[str, str]


def failure(error: grpc.RpcError) -> Failure:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return Failure(error.code(), error.details(), info.reason, info.domain, dict(info.metadata))  # type: ignore[attr-defined]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: hundreds of concurrent connections overflowed it, and
    # the dropped SYNs were retried a second or more later, past the callers' timeouts
    request_queue_size = 1024


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers with ``reply``."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.reply = Reply()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    reply = receiver.reply
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)
