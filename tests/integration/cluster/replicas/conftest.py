"""Fixtures of the replica tests: NATS with JetStream, a throw-away PostgreSQL database per test.

NATS is the machine's own server (127.0.0.1:4222) when it runs with JetStream, otherwise one
started for the session (``tests.nats_server``); PostgreSQL is found or started as the store tests
do. Without either, the tests skip and say why. Each test gets a fresh database and a fresh stream
prefix (``harness.Cluster``), dropped and deleted afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import nats_server
from tests.integration.cluster.replicas import harness
from tests.integration.store import conftest as store_fixtures


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A NATS server with JetStream: the machine's, or one of the session's own."""
    shared = nats_server.shared_url()
    if shared is not None:
        yield shared
        return
    executable = nats_server.binary()
    if executable is None:
        reason = "no nats-server binary (install Debian's nats-server package or set NATS_SERVER)"
        print(reason)
        pytest.skip(reason)
    server = nats_server.NatsServer(executable, tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def database_url() -> Iterator[str]:
    """An empty PostgreSQL database for one test (the first replica migrates it), dropped after."""
    admin, why = store_fixtures._admin_engine()
    if admin is None:
        started = store_fixtures._start_cluster()
        admin, why_again = store_fixtures._admin_engine()
        if admin is None:
            reason = f"PostgreSQL unavailable: {why}; start attempt: {started or 'ok'}; {why_again}"
            print(reason)
            pytest.skip(reason)
    name = f"automations_replicas_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def cluster(tmp_path: Path, database_url: str, nats_url: str) -> Iterator[harness.Cluster]:
    """A cluster with no replica yet (``start_replica`` adds them), torn down after."""
    made = harness.Cluster(tmp_path, database_url, nats_url)
    try:
        yield made
    finally:
        made.close()
