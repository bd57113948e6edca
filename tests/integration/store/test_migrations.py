"""Migrations build the schema from empty, are idempotent, and match the table definitions."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from automations.domain import errors
from automations.store import tables
from automations.store.database import Database, normalize_url

TABLES = {"automations", "events", "engine_state", "firings", "action_invocations"}


def test_migrate_creates_every_table_from_an_empty_database(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert database.current_revision() is None
        database.migrate()
        names = set(sa.inspect(database.reader).get_table_names())
        assert TABLES | {"alembic_version"} <= names
        assert database.current_revision() == database.head_revision()
    finally:
        database.dispose()


def test_migrate_twice_is_a_no_op(db: Database) -> None:
    db.migrate()
    db.migrate()
    assert db.current_revision() == db.head_revision()


def test_migrated_schema_matches_the_table_definitions(db: Database) -> None:
    with db.reader.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, tables.metadata)
    assert diff == []


def test_the_sqlite_durability_and_checkpoint_settings_reach_every_connection(
    tmp_path: object,
) -> None:
    database = Database(
        f"sqlite:///{tmp_path}/s.db", sqlite_synchronous="full", sqlite_wal_autocheckpoint=1000
    )
    try:
        for engine in (database.writer, database.reader):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
                assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        database.dispose()
    with pytest.raises(errors.InvalidArgument):
        Database(f"sqlite:///{tmp_path}/t.db", sqlite_synchronous="NORMAL; DROP TABLE x")


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: object) -> None:
    database = Database(f"sqlite:///{tmp_path}/p.db")
    try:
        for engine in (database.writer, database.reader):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite+pysqlite"),
        ("./automations.db", "sqlite+pysqlite"),
    ],
)
def test_database_urls_select_the_right_driver(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


def test_in_memory_sqlite_shares_one_connection(tmp_path: object) -> None:
    database = Database("sqlite://")
    try:
        database.migrate()
        assert database.reader is database.writer
        assert database.current_revision() == database.head_revision()
    finally:
        database.dispose()


def test_ping_answers_and_reports_an_unreachable_server(db: Database) -> None:
    db.ping()
    gone = Database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    try:
        with pytest.raises(errors.Unavailable):
            gone.ping()
    finally:
        gone.dispose()


def test_an_unsupported_database_is_an_invalid_argument() -> None:
    with pytest.raises(errors.InvalidArgument) as info:
        Database("mysql://u@h/db")
    assert info.value.field == "database_url"


def test_concurrent_migrations_both_succeed(database_url: str) -> None:
    import threading

    failures: list[BaseException] = []

    def migrate() -> None:
        database = Database(database_url)
        try:
            database.migrate()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            failures.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    database = Database(database_url)
    try:
        assert database.current_revision() == database.head_revision()
    finally:
        database.dispose()
