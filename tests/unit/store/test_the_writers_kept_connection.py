"""The single writer's kept SQLite connection: its transactions, a refused BEGIN, a nested write."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from automations.store import database as database_
from automations.store import sql
from automations.store.database import Database

BUSY_MS = 300


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    monkeypatch.setattr(database_, "SQLITE_BUSY_TIMEOUT_MS", BUSY_MS)
    db = Database(f"sqlite:///{tmp_path}/x.db")
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    db.hold_write_connection()
    yield db
    db.dispose()


def _count(db: Database) -> int:
    with db.read() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one())


def test_transactions_on_the_kept_connection_commit_and_roll_back(db: Database) -> None:
    with db.write() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError), db.write() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        raise RuntimeError("rolled back")
    with db.write() as conn:  # a fresh connection after the failure
        conn.exec_driver_sql("INSERT INTO t VALUES (3)")
    assert _count(db) == 2


def test_a_begin_refused_past_the_busy_timeout_is_sqlalchemys_error_after_one_wait(
    db: Database, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="locked"), db.write():
            pass
        waited = time.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert BUSY_MS / 1000 * 0.8 < waited < BUSY_MS / 1000 * 1.8, waited
    with db.write() as conn:  # and the next transaction goes through
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert _count(db) == 1


def test_a_write_inside_a_write_fails_alone_and_the_outer_one_commits(db: Database) -> None:
    with db.write() as outer:
        outer.exec_driver_sql("INSERT INTO t VALUES (1)")
        with pytest.raises(sa.exc.OperationalError), db.write():  # the lock is the outer's
            pass
        outer.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert _count(db) == 2


def test_statements_sent_to_the_driver_commit_and_roll_back_with_the_transaction(
    db: Database,
) -> None:
    with db.write() as conn:
        sql.dbapi(conn).execute("INSERT INTO t VALUES (1)")
        assert not conn.in_transaction()  # SQLAlchemy was not involved
    with pytest.raises(RuntimeError), db.write() as conn:
        sql.dbapi(conn).execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("rolled back")
    assert _count(db) == 1


def test_driver_and_sqlalchemy_statements_of_one_transaction_commit_together(
    db: Database,
) -> None:
    with db.write() as conn:
        sql.dbapi(conn).execute("INSERT INTO t VALUES (1)")
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")  # SQLAlchemy's begin joins the open one
    with pytest.raises(RuntimeError), db.write() as conn:
        sql.dbapi(conn).execute("INSERT INTO t VALUES (3)")
        conn.exec_driver_sql("INSERT INTO t VALUES (4)")
        raise RuntimeError("both rolled back")
    assert _count(db) == 2


def test_a_write_inside_a_driver_only_write_fails_alone_and_the_outer_one_commits(
    db: Database,
) -> None:
    with db.write() as outer:
        sql.dbapi(outer).execute("INSERT INTO t VALUES (1)")
        with pytest.raises(sa.exc.OperationalError), db.write():  # the lock is the outer's
            pass
        sql.dbapi(outer).execute("INSERT INTO t VALUES (2)")
    assert _count(db) == 2


@pytest.fixture
def deferred_db(db: Database) -> Database:
    """``db`` with a deferred foreign key: a COMMIT that breaks it is refused, the transaction
    left open."""
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE p (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE c (p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)"
        )
    return db


@pytest.mark.parametrize("through_sqlalchemy_too", [False, True])
def test_a_refused_commit_is_rolled_back_not_committed_by_a_later_write(
    deferred_db: Database, through_sqlalchemy_too: bool
) -> None:
    with pytest.raises(sa.exc.DBAPIError), deferred_db.write() as conn:
        sql.dbapi(conn).execute("INSERT INTO t VALUES (1)")
        sql.dbapi(conn).execute("INSERT INTO c VALUES (42)")  # no such parent: COMMIT refused
        if through_sqlalchemy_too:
            conn.exec_driver_sql("SELECT 1")

    def elsewhere() -> None:  # another thread's write takes a pooled connection
        with deferred_db.write() as conn:
            conn.exec_driver_sql("DELETE FROM c")

    other = threading.Thread(target=elsewhere)
    other.start()
    other.join()
    with deferred_db.write() as conn:  # and the writer's next transaction goes through
        conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert _count(deferred_db) == 1
