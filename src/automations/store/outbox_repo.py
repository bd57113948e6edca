"""The outbox: action invocations (``domain.invocations``), stored with their firing.

``claim_due`` leases the rows it returns: a ``running`` row whose lease (``next_attempt_at``) has
passed is claimable again, so invocations claimed by a dispatcher that crashed are retried.
``finish_many`` only moves ``running`` rows, and the caller checks with ``running_attempts`` that
each claim is still current, so a dispatcher whose lease expired cannot overwrite the outcome of
the one that took over. Executors dedupe on ``idempotency_key``, which is unique here too
(inserting a duplicate key is a no-op).

``request`` is stored as ``domain.invocations.encode_request``'s JSON, ``result`` as any
orjson-serializable value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.domain import codec, errors, invocations
from automations.domain.invocations import Finish, Invocation, InvocationStatus
from automations.store import pagination, sql, sqlite_batch, tables

DEFAULT_LEASE = 60.0
"""Seconds a claimed invocation stays ``running`` before it may be claimed again."""

_T = tables.action_invocations
_TOKEN_KIND = "invocations"


def _to_row(item: Invocation, partition: int | None = None) -> dict[str, Any]:
    return {
        "id": item.id,
        "automation_id": item.automation_id,
        "firing_id": item.firing_id,
        "action_index": item.action_index,
        "action_type": item.action_type,
        "idempotency_key": item.idempotency_key,
        "status": str(item.status),
        "attempts": item.attempts,
        "next_attempt_at": item.next_attempt_at,
        "last_error": item.last_error,
        "created": item.created,
        "updated": item.updated,
        "request": invocations.encode_request(item.request),
        "result": None if item.result is None else codec.dumps(item.result),
        "partition": partition,
    }


def _from_row(row: Sequence[Any]) -> Invocation:
    """An invocation from its columns in the table's order.

    ``row`` is a table row, or an item of ``_SQLITE_ROWS``' array (times as text, blobs as JSON
    text).
    """
    result = row[13]
    return Invocation(
        id=row[0],
        automation_id=row[1],
        firing_id=row[2],
        action_index=row[3],
        action_type=row[4],
        idempotency_key=row[5],
        status=InvocationStatus(row[6]),
        attempts=row[7],
        next_attempt_at=float(row[8]),
        last_error=row[9],
        created=float(row[10]),
        updated=float(row[11]),
        request=invocations.decode_request(row[12]),
        result=None if result is None else orjson.loads(result),
    )


_COLUMNS = sql.column_names(_T)
"""The table's columns, in the order of ``_to_row``'s keys (the table's own order)."""
_SQLITE_INSERT_HEAD = f"INSERT INTO action_invocations ({sql.column_list(_T)}) VALUES "


def add_many(
    conn: Connection, items: Iterable[Invocation], *, partition: int | None = None
) -> None:
    """Adds invocations, skipping any whose id or idempotency key is stored (the hot path).

    Plain tuples straight to the DB-API cursor: SQLAlchemy's per-row bind processing and RETURNING
    were a fifth of the writer's time in the W1 benchmark (a firing every five events).

    Args:
        conn: A connection in a write transaction.
        items: The invocations.
        partition: Cluster mode: the partition whose owner dispatches them (None otherwise).
    """
    rows = [tuple(row[c] for c in _COLUMNS) for row in (_to_row(i, partition) for i in items)]
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        sql.pg_bulk_insert(conn, _T, _COLUMNS, rows)
        return
    sqlite_batch.execute_values(
        sql.dbapi(conn), _SQLITE_INSERT_HEAD, rows, " ON CONFLICT DO NOTHING"
    )


def get(conn: Connection, invocation_id: str) -> Invocation:
    """Loads one invocation.

    Raises:
        errors.NotFound: No invocation has that id.
    """
    row = conn.execute(sa.select(_T).where(_T.c.id == invocation_id)).first()
    if row is None:
        raise errors.NotFound(f"action invocation {invocation_id!r} not found")
    return _from_row(row)


def claim_due(
    conn: Connection,
    now: float,
    limit: int,
    *,
    lease: float = DEFAULT_LEASE,
    partitions: Sequence[int] | None = None,
) -> list[Invocation]:
    """Claims up to ``limit`` due invocations, earliest first, and leases them.

    Due means ``pending`` with ``next_attempt_at <= now``, or ``running`` with an expired lease.
    Claimed rows become ``running`` with ``attempts + 1`` and ``next_attempt_at = now + lease``. On
    PostgreSQL the rows are locked with ``SKIP LOCKED``, so several dispatchers never claim the same
    row.

    Args:
        conn: A connection in a write transaction (commit it before calling executors).
        now: The current time, seconds since the epoch.
        limit: The most invocations to claim.
        lease: Seconds before a claimed, unfinished invocation may be claimed again.
        partitions: Cluster mode: only invocations of these partitions (None: every one).

    Returns:
        The claimed invocations as updated, in ``next_attempt_at`` order of the claim.
    """
    if limit <= 0 or (partitions is not None and not partitions):
        return []
    if conn.dialect.name == "sqlite" and partitions is None:
        return _claim_due_sqlite(conn, now, limit, lease)
    due = sa.or_(
        sa.and_(_T.c.status == InvocationStatus.PENDING.value, _T.c.next_attempt_at <= now),
        sa.and_(_T.c.status == InvocationStatus.RUNNING.value, _T.c.next_attempt_at <= now),
    )
    if partitions is not None:
        due = sa.and_(_T.c.partition.in_(list(partitions)), due)
    query = sa.select(_T.c.id).where(due).order_by(_T.c.next_attempt_at, _T.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(conn.execute(query).scalars())
    if not ids:
        return []
    stmt = (
        sa.update(_T)
        .where(_T.c.id.in_(ids))
        .values(
            status=InvocationStatus.RUNNING.value,
            attempts=_T.c.attempts + 1,
            next_attempt_at=now + lease,
            updated=now,
        )
        .returning(*_T.c)
    )
    claimed = {row.id: _from_row(row) for row in conn.execute(stmt)}
    return [claimed[i] for i in ids if i in claimed]


_SQLITE_DUE = (
    f"SELECT json_group_array(json_array(id, {sqlite_batch.real('next_attempt_at')})) FROM ("
    "SELECT id, next_attempt_at FROM action_invocations "
    "WHERE (status = 'pending' AND next_attempt_at <= ?) "
    "OR (status = 'running' AND next_attempt_at <= ?) "
    "ORDER BY next_attempt_at, id LIMIT ?)"
)
_SQLITE_CLAIM = (
    "UPDATE action_invocations SET status = 'running', attempts = attempts + 1, "
    "next_attempt_at = ?, updated = ? WHERE id IN ({keys})"
)
_SQLITE_ROWS = (
    f"SELECT json_group_array({sqlite_batch.json_row(_T.columns)}) "
    "FROM action_invocations WHERE id IN ({keys})"
)


def _claim_due_sqlite(conn: Connection, now: float, limit: int, lease: float) -> list[Invocation]:
    # Three one-step statements (see sqlite_batch) instead of a row-per-step SELECT and
    # UPDATE ... RETURNING: claiming ran on the writer thread behind the event loop for the GIL.
    dbapi = sql.dbapi(conn)
    due = sqlite_batch.fetch_json(dbapi, _SQLITE_DUE, (now, now, limit))
    if not due:
        return []
    due.sort(key=lambda item: (float(item[1]), item[0]))
    ids = [item[0] for item in due]
    sqlite_batch.execute_in(dbapi, _SQLITE_CLAIM, ids, (now + lease, now))
    claimed = {
        values[0]: _from_row(values)
        for values in sqlite_batch.fetch_json_in(dbapi, _SQLITE_ROWS, ids)
    }
    return [claimed[i] for i in ids if i in claimed]


def redrive_one(conn: Connection, invocation_id: str, *, now: float) -> Invocation:
    """Puts one failed or dead-lettered invocation back to ``pending``, due ``now``; returns it.

    Raises:
        errors.NotFound: Unknown invocation.
        errors.FailedPrecondition: It is neither failed nor dead-lettered.
    """
    current = get(conn, invocation_id)
    if current.status not in invocations.REDRIVABLE:
        raise errors.FailedPrecondition(
            f"invocation {invocation_id!r} is {current.status}; only failed or "
            "dead-lettered invocations can be redriven",
            reason="INVOCATION_NOT_REDRIVABLE",
        )
    redrive(conn, now=now, ids=[invocation_id], statuses=sorted(invocations.REDRIVABLE))
    return get(conn, invocation_id)


def redrive(
    conn: Connection,
    *,
    now: float,
    ids: Sequence[str] | None = None,
    automation_id: str | None = None,
    statuses: Sequence[str] = (InvocationStatus.DEAD_LETTER.value,),
) -> int:
    """Puts parked invocations back to ``pending`` (due now, attempts reset to 0).

    Args:
        conn: A connection in a write transaction.
        now: The current time.
        ids: Only these invocations.
        automation_id: Only this automation's invocations.
        statuses: Which statuses to redrive (dead-lettered ones by default; add ``failed`` to retry
            permanent failures too).

    Returns:
        The number of invocations redriven.

    Raises:
        errors.InvalidArgument: A status is not redrivable (only ``failed``, ``dead_letter``).
    """
    for status in statuses:
        if status not in (InvocationStatus.FAILED.value, InvocationStatus.DEAD_LETTER.value):
            raise errors.InvalidArgument("statuses", f"{status!r} cannot be redriven")
    stmt = sa.update(_T).where(_T.c.status.in_(list(statuses)))
    if ids is not None:
        if not ids:
            return 0
        stmt = stmt.where(_T.c.id.in_(list(ids)))
    if automation_id is not None:
        stmt = stmt.where(_T.c.automation_id == automation_id)
    stmt = stmt.values(
        status=InvocationStatus.PENDING.value, attempts=0, next_attempt_at=now, updated=now
    )
    return conn.execute(stmt).rowcount


def list_page(
    conn: Connection,
    *,
    status: str | Sequence[str] | None = None,
    automation_id: str | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> tuple[list[Invocation], str]:
    """Lists invocations in creation order (then id), one page at a time.

    Args:
        conn: Any connection.
        status: Only this status (or these statuses).
        automation_id: Only this automation's invocations.
        page_size: Invocations per page (default ``pagination.DEFAULT_PAGE_SIZE``).
        page_token: The token returned with the previous page.

    Returns:
        The page and the next page's token ("" on the last page).

    Raises:
        errors.InvalidArgument: On a bad ``page_token`` or ``page_size``.
    """
    query = sa.select(_T)
    if status is not None:
        query = query.where(_T.c.status.in_([status] if isinstance(status, str) else list(status)))
    if automation_id is not None:
        query = query.where(_T.c.automation_id == automation_id)
    return pagination.keyset_page(
        conn,
        query,
        kind=_TOKEN_KIND,
        columns=(_T.c.created, _T.c.id),
        page_size=page_size,
        page_token=page_token,
        from_row=_from_row,
        key_of=lambda i: (i.created, i.id),
    )


def purge(conn: Connection, older_than: float, *, limit: int = 50_000) -> int:
    """Deletes finished invocations (succeeded, failed) created before ``older_than``.

    Dead-lettered ones are kept until redriven or deleted by hand. The age is the creation time
    (the firing's), which the ``(created, id)`` index serves: a purge never scans the table.

    Args:
        conn: A connection in a write transaction.
        older_than: The cutoff, seconds since the epoch.
        limit: The most rows deleted by this call (keeps the writer's transaction short).

    Returns:
        The number deleted.
    """
    # lower(status): keeps the planner on the (created, id) index instead of the status one,
    # whose "succeeded" range is nearly the whole table
    doomed = (
        sa.select(_T.c.id)
        .where(
            _T.c.created < older_than,
            sa.func.lower(_T.c.status).in_(
                [InvocationStatus.SUCCEEDED.value, InvocationStatus.FAILED.value]
            ),
        )
        .order_by(_T.c.created, _T.c.id)
        .limit(limit)
    )
    return conn.execute(sa.delete(_T).where(_T.c.id.in_(doomed.scalar_subquery()))).rowcount


def release_running(
    conn: Connection, now: float, *, partitions: Sequence[int] | None = None
) -> int:
    """Makes every ``running`` invocation ``pending`` and due now (its attempt keeps counting).

    Run at start by the only dispatcher of a database: the invocations it finds ``running`` were
    in flight when the previous process stopped, and must be attempted again (executors dedupe).
    In cluster mode, by a partition's new owner for that partition's invocations.

    Args:
        conn: A connection in a write transaction.
        now: The current time.
        partitions: Only invocations of these partitions (None: every one).

    Returns:
        The number of invocations released.
    """
    where = _T.c.status == InvocationStatus.RUNNING.value
    if partitions is not None:
        where = sa.and_(where, _T.c.partition.in_(list(partitions)))
    stmt = (
        sa.update(_T)
        .where(where)
        .values(status=InvocationStatus.PENDING.value, next_attempt_at=now)
    )
    return conn.execute(stmt).rowcount


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    """The outbox's open work.

    Attributes:
        open: Invocations ``pending`` or ``running``.
        oldest_created: Creation time of the oldest of them, or None.
        next_due: The earliest ``next_attempt_at`` of a ``pending`` one, or None.
    """

    open: int
    oldest_created: float | None
    next_due: float | None


def stats(conn: Connection, *, partitions: Sequence[int] | None = None) -> Stats:
    """Reads the outbox's open work (two index-backed aggregates).

    Args:
        conn: Any connection.
        partitions: Cluster mode: only invocations of these partitions (None: every one).
    """
    mine = [] if partitions is None else [_T.c.partition.in_(list(partitions))]
    open_query = sa.select(sa.func.count(), sa.func.min(_T.c.created)).where(
        _T.c.status.in_([InvocationStatus.PENDING.value, InvocationStatus.RUNNING.value]), *mine
    )
    count, oldest = conn.execute(open_query).one()
    due_query = sa.select(sa.func.min(_T.c.next_attempt_at)).where(
        _T.c.status == InvocationStatus.PENDING.value, *mine
    )
    due = conn.execute(due_query).scalar()
    return Stats(
        open=int(count or 0),
        oldest_created=None if oldest is None else float(oldest),
        next_due=None if due is None else float(due),
    )


_RUNNING_ATTEMPTS = sa.text(
    "SELECT id, attempts FROM action_invocations WHERE status = 'running' AND id IN :ids"
).bindparams(sa.bindparam("ids", expanding=True))


def running_attempts(conn: Connection, invocation_ids: Sequence[str]) -> dict[str, int]:
    """Returns ``id -> attempts`` of those invocations that are ``running`` (claimed)."""
    out: dict[str, int] = {}
    ids = list(dict.fromkeys(invocation_ids))
    if conn.dialect.name == "sqlite":
        return dict(sqlite_batch.fetch_json_in(sql.dbapi(conn), _SQLITE_RUNNING_ATTEMPTS, ids))
    for start in range(0, len(ids), 500):
        rows = conn.execute(_RUNNING_ATTEMPTS, {"ids": ids[start : start + 500]})
        out.update((row[0], row[1]) for row in rows)
    return out


_SQLITE_RUNNING_ATTEMPTS = (
    "SELECT json_group_array(json_array(id, attempts)) FROM action_invocations "
    "WHERE status = 'running' AND id IN ({keys})"
)

_FINISH = sa.text(
    "UPDATE action_invocations SET status = :status, updated = :updated, "
    "last_error = :last_error, next_attempt_at = COALESCE(:next_attempt_at, next_attempt_at), "
    "result = :result WHERE id = :id AND status = 'running'"
).bindparams(sa.bindparam("result", type_=sa.LargeBinary))


_SQLITE_FINISH = (
    "UPDATE action_invocations SET status = ?, updated = ?, last_error = ?, "
    "next_attempt_at = COALESCE(?, next_attempt_at), result = ? "
    "WHERE id = ? AND status = 'running'"
)
_SQLITE_FINISH_HEAD = "WITH v(status, updated, last_error, next_attempt_at, result, id) AS (VALUES "
_SQLITE_FINISH_TAIL = (
    ") UPDATE action_invocations SET status = v.status, updated = v.updated, "
    "last_error = v.last_error, "
    "next_attempt_at = COALESCE(v.next_attempt_at, action_invocations.next_attempt_at), "
    "result = v.result FROM v WHERE action_invocations.id = v.id "
    "AND action_invocations.status = 'running'"
)


def finish_many(conn: Connection, finishes: Sequence[Finish], *, now: float) -> None:
    """Records the end of many claimed attempts in one statement.

    The caller has checked with :func:`running_attempts` that each claim is still current (both in
    the same write transaction); rows no longer ``running`` are left alone.
    """
    if not finishes:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(
            _FINISH,
            [
                {
                    "id": f.id,
                    "status": str(f.status),
                    "updated": now,
                    "last_error": f.error,
                    "next_attempt_at": f.next_attempt_at,
                    "result": None if f.result is None else codec.dumps(f.result),
                }
                for f in finishes
            ],
        )
        return
    # SQLite: plain tuples to the DB-API cursor (SQLAlchemy's per-row parameter processing was
    # a third of the time of recording outcomes in the dispatch benchmark), as one
    # UPDATE ... FROM (VALUES ...) statement: one step, see sqlite_batch.
    dbapi = sql.dbapi(conn)
    by_id = {  # one row per id, the last one winning, as with one UPDATE after the other
        f.id: (
            str(f.status),
            now,
            f.error,
            f.next_attempt_at,
            None if f.result is None else codec.dumps(f.result),
            f.id,
        )
        for f in finishes
    }
    rows = list(by_id.values())
    if sqlite_batch.UPDATE_FROM:
        sqlite_batch.execute_values(dbapi, _SQLITE_FINISH_HEAD, rows, _SQLITE_FINISH_TAIL)
    else:
        dbapi.executemany(_SQLITE_FINISH, rows)
