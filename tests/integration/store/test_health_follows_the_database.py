"""Health follows the database: a real engine on PostgreSQL reports NOT_SERVING while its database
refuses connections and SERVING again once it accepts them, without restarting."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

import automations
from tests.integration.engine_process import EngineProcess

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

SERVICES = ("", "automations.v1.EventService", "automations.v1.AutomationService")
Status = health_pb2.HealthCheckResponse


@pytest.fixture
def own_database(postgres_url: str) -> Iterator[tuple[sa.Engine, str]]:
    """A fresh database of its own (the session's shared one must stay reachable); yields the
    server's admin engine and the database's name."""
    admin = sa.create_engine(
        sa.make_url(postgres_url).set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    name = f"automations_health_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin, name
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def statuses(engine: EngineProcess) -> set[int]:
    with grpc.insecure_channel(engine.grpc_addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return {
            stub.Check(health_pb2.HealthCheckRequest(service=s), timeout=10).status
            for s in SERVICES
        }


def wait_for(engine: EngineProcess, status: int, within: float = 30.0) -> None:
    """Waits until every service reports ``status`` (pinged every 0.5 s: well within a second
    on an idle machine; the bound is for a busy one)."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if statuses(engine) == {status}:
            return
        assert engine.proc is not None and engine.proc.poll() is None, engine.log()
        time.sleep(0.1)
    raise AssertionError(f"not {Status.ServingStatus.Name(status)} in {within}s:\n{engine.log()}")


def test_health_is_not_serving_while_the_database_refuses_connections(
    own_database: tuple[sa.Engine, str], postgres_url: str, tmp_path: Path
) -> None:
    admin, name = own_database
    url = sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    engine = EngineProcess(
        tmp_path, database_url=url, env={"AUTOMATIONS_DATABASE_CHECK_SECONDS": "0.5"}
    ).start()
    try:
        assert statuses(engine) == {Status.SERVING}

        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        wait_for(engine, Status.NOT_SERVING)
        time.sleep(1.5)  # several failed pings (every 0.5 s): still NOT_SERVING, and logged once
        assert statuses(engine) == {Status.NOT_SERVING}

        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        wait_for(engine, Status.SERVING)

        with automations.Client(engine.grpc_addr, timeout=30) as client:  # and it works again
            event = {
                "id": str(uuid.uuid4()),
                "event": "db.back",
                "resource": {"prefect.resource.id": "r"},
            }
            [result] = client.publish([event])
            assert result.status == "accepted"
        log = engine.log()
        assert log.count("database unreachable") == 1, log
        assert log.count("database reachable again") == 1, log
        assert engine.terminate() == 0
    finally:
        engine.stop()
