"""A NATS server with JetStream for the log's tests, and a fresh pair of streams per test.

The machine's own server (127.0.0.1:4222) when it runs with JetStream, otherwise one started for
the session; ``own_nats_server`` is always one of the test's own (it gets stopped and restarted).
Without a nats-server binary these tests skip and say why.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from automations.cluster import log, log_streams
from tests import nats_server

NO_BINARY = "no nats-server binary (install Debian's nats-server package or set NATS_SERVER)"


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    shared = nats_server.shared_url()
    if shared is not None:
        yield shared
        return
    executable = nats_server.binary()
    if executable is None:
        pytest.skip(NO_BINARY)
    server = nats_server.NatsServer(executable, tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def own_nats_server(tmp_path: Path) -> Iterator[nats_server.NatsServer]:
    executable = nats_server.binary()
    if executable is None:
        pytest.skip(NO_BINARY)
    server = nats_server.NatsServer(executable, tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def fresh_settings(**overrides: object) -> log_streams.LogSettings:
    return log_streams.LogSettings(prefix=f"T{uuid.uuid4().hex[:12]}", **overrides)  # type: ignore[arg-type]


async def open_log(url: str, settings: log_streams.LogSettings) -> log.JetStreamLog:
    opened = await log.JetStreamLog.connect(url, settings, request_timeout=5.0)
    await opened.ensure_streams()
    return opened


@pytest.fixture
async def jetstream_log(nats_url: str) -> AsyncIterator[log.JetStreamLog]:
    """A connected log with streams of its own, deleted afterwards."""
    opened = await open_log(nats_url, fresh_settings())
    try:
        yield opened
    finally:
        await opened.delete_streams()
        await opened.close()
