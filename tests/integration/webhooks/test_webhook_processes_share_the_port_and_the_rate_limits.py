"""Several webhook front processes: connections spread over them, one rate limit across them all."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import automations
from tests.integration.engine_process import EngineProcess

TEMPLATE = '{"event": "spread.hit", "resource": {"prefect.resource.id": "spread.{{ body.n }}"}}'
PROCESSES = 2


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    started = EngineProcess(
        tmp_path_factory.mktemp("spread"),
        env={"AUTOMATIONS_WEBHOOK_PROCESSES": str(PROCESSES)},
    ).start()
    yield started
    started.stop()


def _connections(count: int, addr: str) -> list[socket.socket]:
    host, port = addr.rsplit(":", 1)
    return [socket.create_connection((host, int(port)), timeout=10) for _ in range(count)]


def _post(sock: socket.socket, path: str, body: bytes) -> int:
    """One HTTP/1.1 POST on a kept-alive connection; its status code."""
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed"
        head += chunk
    status_line, _, rest = head.partition(b"\r\n")
    headers, _, already = rest.partition(b"\r\n\r\n")
    length = 0
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(already) < length:
        already += sock.recv(65536)
    return int(status_line.split()[1])


def _sockets_held(pid: int) -> int:
    """How many sockets a process holds open."""
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            held += fd.readlink().name.startswith("socket:")
        except OSError:
            continue
    return held


def test_connections_are_spread_over_every_webhook_process(engine: EngineProcess) -> None:
    with automations.Client(engine.grpc_addr) as api:
        hook = api.create_webhook("spread", TEMPLATE)
    path = "/hooks/" + hook["slug"]
    fronts = engine.webhook_fronts()
    assert len(fronts) == PROCESSES
    idle = {pid: _sockets_held(pid) for pid in fronts}
    conns = _connections(32, engine.http_addr)
    try:
        for n, conn in enumerate(conns):
            assert _post(conn, path, b'{"n": %d}' % n) == 204
        # each front holds its listening socket, its two socket pairs and its connections
        gained = {pid: _sockets_held(pid) - idle[pid] for pid in fronts}
        assert sum(gained.values()) == 32
        assert all(count > 0 for count in gained.values()), gained
    finally:
        for conn in conns:
            conn.close()
    with automations.Client(engine.grpc_addr) as api:
        assert len(api.list_events(names=["spread.hit"])) == 32


def test_a_rate_limit_holds_across_the_processes(engine: EngineProcess) -> None:
    with automations.Client(engine.grpc_addr) as api:
        hook = api.create_webhook(f"limited-{uuid.uuid4().hex[:6]}", TEMPLATE, rate_limit=2)
    path = "/hooks/" + hook["slug"]
    conns = _connections(24, engine.http_addr)  # spread over both processes (checked above)
    try:
        started = time.monotonic()
        statuses = [_post(conn, path, b'{"n": %d}' % n) for n, conn in enumerate(conns)]
        elapsed = time.monotonic() - started
    finally:
        for conn in conns:
            conn.close()
    accepted = statuses.count(204)
    # a burst of 2 and 2 tokens a second for the whole webhook; each process with a bucket of
    # its own would take 2 at once
    assert 2 <= accepted <= 2 + int(elapsed * 2) + 1, (accepted, elapsed)
    assert statuses.count(429) == len(statuses) - accepted
