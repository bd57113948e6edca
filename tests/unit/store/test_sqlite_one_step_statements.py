"""On SQLite, the writer's many-row reads and writes are one statement (one step) per chunk.

Each statement run is one GIL hand-back on the writer thread (see ``store.sqlite_batch``), so a
per-row loop there queues the writer behind the event loop once per row. These tests count the
statements SQLite runs (its trace callback fires once per run, e.g. once per ``executemany`` row)
and check that the one-step forms keep the results exact.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from automations.domain import actions, invocations
from automations.domain import firings as firings_
from automations.domain.invocations import Finish, InvocationStatus
from automations.store import firings_repo, outbox_repo, sqlite_batch, state_repo
from automations.store.database import Database
from tests import factories

TIMES = [1_764_094_000.0 + random.Random(n).random() * 1e7 for n in range(50)]
"""Times since the epoch with all 17 significant digits in use."""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'one-step.db'}")
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


@contextmanager
def traced(conn: Any) -> Iterator[list[str]]:
    """Collects the SQL of every statement run on ``conn``'s sqlite3 connection."""
    statements: list[str] = []
    dbapi = conn.connection.dbapi_connection
    dbapi.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        dbapi.set_trace_callback(None)


def invocation(n: int) -> invocations.Invocation:
    action = actions.Action(
        "call-webhook", {"url": "http://x", "n": n, "text": 'quote " and \\ and ünïcode'}
    )
    return factories.invocation(
        n,
        id=f"i{n:04d}",
        firing_id=f"f{n % 7}",
        action_index=n % 3,
        action=action,
        next_attempt_at=TIMES[n % len(TIMES)] - 1e8,
        created=TIMES[n % len(TIMES)],
        updated=TIMES[(n + 1) % len(TIMES)],
    )


def test_adding_claiming_and_finishing_500_invocations_runs_a_handful_of_statements(
    db: Database,
) -> None:
    items = [invocation(n) for n in range(500)]
    with db.write() as conn, traced(conn) as statements:
        outbox_repo.add_many(conn, items)
        assert len(statements) == 1
        del statements[:]
        claimed = outbox_repo.claim_due(conn, now=TIMES[0], limit=1000, lease=30.0)
        assert len(statements) == 3
        del statements[:]
        current = outbox_repo.running_attempts(conn, [c.id for c in claimed])
        outbox_repo.finish_many(
            conn,
            [
                Finish(id=c.id, status=InvocationStatus.SUCCEEDED, result={"ok": c.id})
                for c in claimed
            ],
            now=TIMES[1],
        )
        assert len(statements) == 2
    assert len(claimed) == 500 and current == {c.id: 1 for c in claimed}
    by_id = {i.id: i for i in items}
    for c in claimed:  # the JSON round trip gives the stored values back, times to the bit
        expected = by_id[c.id]
        assert (c.request, c.created) == (expected.request, expected.created)
        assert (c.status, c.attempts, c.next_attempt_at, c.updated) == (
            "running",
            1,
            TIMES[0] + 30.0,
            TIMES[0],
        )
    with db.read() as conn:
        stored = outbox_repo.get(conn, "i0042")
    assert (stored.status, stored.result, stored.updated) == (
        "succeeded",
        {"ok": "i0042"},
        TIMES[1],
    )


def test_finishing_only_touches_running_rows_and_keeps_the_last_outcome_of_an_id(
    db: Database,
) -> None:
    with db.write() as conn:
        outbox_repo.add_many(conn, [invocation(1), invocation(2)])
        outbox_repo.claim_due(conn, now=TIMES[0], limit=1)  # only the earliest is running
        running = [
            i.id
            for i in (invocation(1), invocation(2))
            if outbox_repo.get(conn, i.id).status == "running"
        ]
        outbox_repo.finish_many(
            conn,
            [
                Finish(
                    id=running[0],
                    status=InvocationStatus.PENDING,
                    error="first",
                    next_attempt_at=5.0,
                ),
                Finish(id=running[0], status=InvocationStatus.FAILED, error="last"),
                Finish(
                    id="i0001" if running[0] == "i0002" else "i0002", status=InvocationStatus.FAILED
                ),
            ],
            now=TIMES[2],
        )
        done = outbox_repo.get(conn, running[0])
        other = outbox_repo.get(conn, "i0001" if running[0] == "i0002" else "i0002")
    assert (done.status, done.last_error, done.next_attempt_at) == (
        "failed",
        "last",
        TIMES[0] + outbox_repo.DEFAULT_LEASE,
    )
    assert other.status == "pending"


def firing(n: int) -> firings_.Firing:
    return firings_.Firing(
        id=f"f{n}",
        automation_id="a1",
        trigger_id="t1",
        trigger_type="event",
        posture="Reactive",
        triggered=TIMES[n % len(TIMES)],
        triggering_event=None,
        triggering_labels={"n": str(n)},
        child_firings=(),
    )


def test_firings_are_written_and_read_back_in_one_statement_each(db: Database) -> None:
    items = [firing(n) for n in range(300)]
    with db.write() as conn, traced(conn) as statements:
        firings_repo.insert_many(conn, items)
        found = firings_repo.get_many(conn, [f.id for f in items] + ["missing"])
    assert len(statements) == 2
    assert found == {f.id: f for f in items}


def test_engine_state_is_upserted_and_deleted_in_one_statement_each(db: Database) -> None:
    records = [
        ("a1", "t1", "bucket", f"k{n}", {"count": n}, TIMES[n % len(TIMES)]) for n in range(400)
    ]
    with db.write() as conn, traced(conn) as statements:
        state_repo.upsert_many(conn, records)
        state_repo.upsert_many(conn, [("a1", "t1", "bucket", "k1", {"count": -1}, None)])
        state_repo.delete_many(conn, [r[:4] for r in records[100:]] + [("a1", "t1", "x", "y")])
    assert len(statements) == 3
    with db.read() as conn:
        left = {row.key: (row.data, row.due) for row in state_repo.load_all(conn)}
    assert len(left) == 100
    assert left["k1"] == ({"count": -1}, None)
    assert left["k2"] == ({"count": 2}, TIMES[2])


def test_values_lists_are_split_under_the_bound_variable_limit() -> None:
    dbapi = sqlite3.connect(":memory:", isolation_level=None)
    dbapi.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
    dbapi.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 7)  # three rows of two per statement
    statements: list[str] = []
    dbapi.set_trace_callback(statements.append)
    rows = [(n, f"v{n}") for n in range(10)]
    assert sqlite_batch.execute_values(dbapi, "INSERT INTO t (a, b) VALUES ", rows) == 10
    assert len(statements) == 4
    found = sqlite_batch.fetch_json_in(
        dbapi,
        "SELECT json_group_array(json_array(a, b)) FROM t WHERE a IN ({keys})",
        list(range(10)),
    )
    assert sorted(map(tuple, found)) == rows
    assert sqlite_batch.fetch_json(dbapi, "SELECT json_group_array(a) FROM t WHERE a < 0") == []


def test_reals_read_through_json_are_the_stored_doubles() -> None:
    dbapi = sqlite3.connect(":memory:")
    values = [*TIMES, 0.1, 1e-3, 123456789.123456789, 2.5]
    query = f"SELECT json_group_array({sqlite_batch.real('x')}) FROM (SELECT ? AS x)"
    assert [float(sqlite_batch.fetch_json(dbapi, query, (v,))[0]) for v in values] == values
