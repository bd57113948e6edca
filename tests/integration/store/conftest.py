"""Store fixtures: every test runs against SQLite (a temp file) and a real PostgreSQL.

PostgreSQL: a throw-away database ``automations_test_<random>`` is created once per session (as
user postgres or root, over TCP or the local socket) and dropped at the end; tables are emptied
between tests. When no server answers we try to start the local cluster with ``pg_ctlcluster``, and
only if that fails are the PostgreSQL cases skipped, with the reason.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from automations.store import tables
from automations.store.database import Database

_ADMIN_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "postgresql+psycopg://postgres@/postgres",
    "postgresql+psycopg://root@127.0.0.1:5432/postgres",
    "postgresql+psycopg://root@/postgres",
)


def _admin_engine() -> tuple[sa.Engine | None, str]:
    errors: list[str] = []
    override = os.environ.get("AUTOMATIONS_TEST_PG_ADMIN_URL")
    for url in (override,) if override else _ADMIN_URLS:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return engine, ""
        except sa.exc.OperationalError as exc:
            errors.append(f"{url}: {str(exc.orig).strip().splitlines()[0]}")
            engine.dispose()
    return None, "; ".join(errors)


def _start_cluster() -> str:
    try:
        versions = sorted(os.listdir("/etc/postgresql"))
    except OSError as exc:
        return f"no /etc/postgresql ({exc})"
    if not versions:
        return "no cluster under /etc/postgresql"
    cmd = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(cmd)}: {exc}"
    return "" if done.returncode == 0 else f"{' '.join(cmd)}: {done.stderr.strip()}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database for this session."""
    admin, why = _admin_engine()
    if admin is None:
        started = _start_cluster()
        admin, why_again = _admin_engine()
        if admin is None:
            reason = f"PostgreSQL unavailable: {why}; start attempt: {started or 'ok'}; {why_again}"
            print(reason)
            pytest.skip(reason)
    name = f"automations_test_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        database = Database(url)
        database.migrate()
        database.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` or ``postgresql``."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty (not migrated) database URL of the backend; PostgreSQL's is emptied first."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url = str(request.getfixturevalue("postgres_url"))
    database = Database(url)
    with database.write() as conn:
        tables.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    database.dispose()
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated, empty database of the backend."""
    database = Database(database_url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()
