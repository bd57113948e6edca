"""Cluster fixtures: a throw-away PostgreSQL database per test module, emptied between tests.

The server is found (or started) as the store tests do (``tests/integration/store/conftest.py``);
without one the tests are skipped with the reason.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from automations.store import tables
from automations.store.database import Database
from tests.integration.store import conftest as store_fixtures

CLUSTER_TABLES = (
    tables.partition_history,
    tables.partitions,
    tables.cluster_members,
    tables.cluster,
)


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database for this test module, dropped after."""
    admin, why = store_fixtures._admin_engine()
    if admin is None:
        started = store_fixtures._start_cluster()
        admin, why_again = store_fixtures._admin_engine()
        if admin is None:
            reason = f"PostgreSQL unavailable: {why}; start attempt: {started or 'ok'}; {why_again}"
            print(reason)
            pytest.skip(reason)
    name = f"automations_cluster_test_{secrets.token_hex(6)}"
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


@pytest.fixture
def database(cluster_url: str) -> Iterator[Database]:
    """The module's database with empty cluster tables."""
    db = Database(cluster_url)
    with db.write() as conn:
        for table in CLUSTER_TABLES:
            conn.execute(table.delete())
    try:
        yield db
    finally:
        db.dispose()
