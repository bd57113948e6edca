"""A NATS server with JetStream for tests: the machine's own, or one started for the run.

``shared_url()`` is ``nats://127.0.0.1:4222`` when a server there answers with JetStream enabled
(Debian's ``nats-server`` package runs one). Otherwise :class:`NatsServer` starts ``nats-server -js``
on a free loopback port with its store in a temporary directory; tests that restart or stop the
server always start their own. Without a ``nats-server`` binary, :func:`binary` returns None and the
fixtures skip, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SHARED_HOST = "127.0.0.1"
SHARED_PORT = 4222
DEBIAN_BINARY = "/usr/sbin/nats-server"


def binary() -> str | None:
    """The nats-server executable: ``$NATS_SERVER``, Debian's path, or one on PATH."""
    for candidate in (os.environ.get("NATS_SERVER"), DEBIAN_BINARY, shutil.which("nats-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def server_info(host: str, port: int, timeout: float = 1.0) -> dict[str, object] | None:
    """The INFO a NATS server sends on connecting, or None when nothing answers like one."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            line = b""
            while not line.endswith(b"\r\n") and len(line) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                line += chunk
    except OSError:
        return None
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:].strip())
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


def jetstream_answers(host: str, port: int) -> bool:
    """Whether a NATS server with JetStream enabled answers at host:port."""
    info = server_info(host, port)
    return bool(info and info.get("jetstream"))


def shared_url() -> str | None:
    """The machine's own server when it runs with JetStream, else None."""
    if jetstream_answers(SHARED_HOST, SHARED_PORT):
        return f"nats://{SHARED_HOST}:{SHARED_PORT}"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """A ``nats-server -js`` process of our own, on a free loopback port; restartable.

    Its store directory outlives restarts, so streams and their messages survive them (as they
    survive a real server's restart).
    """

    def __init__(
        self, executable: str, directory: Path, *, port: int | None = None, jetstream: bool = True
    ) -> None:
        self.executable = executable
        self.directory = directory
        self.jetstream = jetstream
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 15.0) -> None:
        """Starts the server and waits until it answers (with JetStream enabled, if asked)."""
        assert self.process is None, "already running"
        store = self.directory / "store"
        store.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "nats-server.log", "ab")  # noqa: SIM115 - the child keeps it
        command = [self.executable, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            command += ["-js", "-sd", str(store)]
        self.process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode}; see {self.directory}/nats-server.log"
                )
            info = server_info("127.0.0.1", self.port)
            if info is not None and bool(info.get("jetstream")) == self.jetstream:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not answer on port {self.port} within {timeout} s")

    def stop(self, *, kill: bool = False) -> None:
        """Stops the server: SIGTERM (a clean shutdown) or SIGKILL, and waits for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self, *, kill: bool = False) -> None:
        """Stops and starts the server on the same port and store."""
        self.stop(kill=kill)
        self.start()
