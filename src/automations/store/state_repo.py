"""Generic, opaque engine state: one row per ``(automation_id, trigger_id, kind, key)``.

The engine decides what a record means (``kind`` is e.g. ``bucket``, ``composite``, ``parked``;
``key`` the for_each bucket key); the store only persists it. ``data`` is any orjson-serializable
value (``bytes`` are taken as already-encoded JSON and stored as is); ``due`` is the record's next
deadline in seconds since the epoch, or None.

The engine's own ``StateRecord`` lives in ``automations.engine``, which this package must not
import. Every function here therefore accepts any object with the attributes ``automation_id``,
``trigger_id``, ``kind``, ``key``, ``data``, ``due`` *or* a plain tuple in that order, and returns
:class:`StateRow` named tuples, which have the same attributes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.domain import codec
from automations.store import sql, sqlite_batch, tables

_T = tables.engine_state
_COLUMN_NAMES = ("automation_id", "trigger_id", "kind", "key", "data", "due")


class StateLike(Protocol):
    """What ``upsert_many`` reads from a record (the engine's ``StateRecord`` fits)."""

    @property
    def automation_id(self) -> str: ...  # noqa: D102
    @property
    def trigger_id(self) -> str: ...  # noqa: D102
    @property
    def kind(self) -> str: ...  # noqa: D102
    @property
    def key(self) -> str: ...  # noqa: D102
    @property
    def data(self) -> Any: ...  # noqa: D102
    @property
    def due(self) -> float | None: ...  # noqa: D102


class StateRow(NamedTuple):
    """One stored record, with ``data`` decoded."""

    automation_id: str
    trigger_id: str
    kind: str
    key: str
    data: Any
    due: float | None


class StateKey(NamedTuple):
    """The primary key of a record."""

    automation_id: str
    trigger_id: str
    kind: str
    key: str


def _as_tuple(record: StateLike | tuple[Any, ...]) -> tuple[str, str, str, str, Any, float | None]:
    if isinstance(record, tuple) and not hasattr(record, "automation_id"):
        automation_id, trigger_id, kind, key, data, due = record
        return automation_id, trigger_id, kind, key, data, due
    r: Any = record
    return r.automation_id, r.trigger_id, r.kind, r.key, r.data, r.due


def _key_of(record: Any) -> tuple[str, str, str, str]:
    if isinstance(record, tuple) and not hasattr(record, "automation_id"):
        return record[0], record[1], record[2], record[3]
    return record.automation_id, record.trigger_id, record.kind, record.key


# Many rows per statement, one step each (see sqlite_batch).
_KEY = tuple(column.name for column in _T.primary_key.columns)
_VALUES = tuple(name for name in sql.column_names(_T) if name not in _KEY)
_SQLITE_UPSERT_HEAD = f"INSERT INTO engine_state ({sql.column_list(_T)}) VALUES "
_SQLITE_UPSERT_TAIL = (
    f" ON CONFLICT ({', '.join(_KEY)}) "
    f"DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in _VALUES)}"
)
# (not "(automation_id, ...) IN (VALUES ...)": SQLite scans the whole table for that one)
_SQLITE_DELETE_HEAD = "DELETE FROM engine_state WHERE rowid IN (SELECT e.rowid FROM (VALUES "
_SQLITE_DELETE_TAIL = (
    ") AS v CROSS JOIN engine_state AS e ON e.automation_id = v.column1 "
    "AND e.trigger_id = v.column2 AND e.kind = v.column3 AND e.key = v.column4)"
)


def upsert_many(conn: Connection, records: Iterable[StateLike | tuple[Any, ...]]) -> int:
    """Inserts or replaces records (``data`` and ``due`` are overwritten).

    When the same key appears several times, the last record wins.

    Rows go to the DBAPI cursor as plain tuples (sqlite3 ``executemany``, PostgreSQL's one-statement
    ``unnest``): SQLAlchemy Core's per-row bind processing was ~35% of the writer's time in the
    distinct-keys ingest profile (one changed bucket per event and automation).

    Args:
        conn: A connection in a write transaction.
        records: Objects with the six attributes, or 6-tuples in column order.

    Returns:
        The number of distinct keys written.
    """
    latest: dict[tuple[str, str, str, str], tuple[Any, ...]] = {}
    for record in records:
        automation_id, trigger_id, kind, key, data, due = _as_tuple(record)
        latest[(automation_id, trigger_id, kind, key)] = (
            automation_id,
            trigger_id,
            kind,
            key,
            codec.dumps(data),
            due,
        )
    if not latest:
        return 0
    if conn.dialect.name == "postgresql":
        sql.pg_bulk_insert(
            conn,
            _T,
            _COLUMN_NAMES,
            list(latest.values()),
            on_conflict=(
                "ON CONFLICT (automation_id, trigger_id, kind, key) "
                "DO UPDATE SET data = excluded.data, due = excluded.due"
            ),
        )
    else:
        sqlite_batch.execute_values(
            sql.dbapi(conn), _SQLITE_UPSERT_HEAD, list(latest.values()), _SQLITE_UPSERT_TAIL
        )
    return len(latest)


def delete_many(conn: Connection, keys: Iterable[StateLike | StateKey | tuple[Any, ...]]) -> int:
    """Deletes records by key; unknown keys are ignored.

    Args:
        conn: A connection in a write transaction.
        keys: Records or 4-tuples ``(automation_id, trigger_id, kind, key)`` (longer tuples are
            fine: only the first four items are read).

    Returns:
        The number of keys asked for (drivers do not all report deleted rows for executemany).
    """
    unique = list(dict.fromkeys(_key_of(r) for r in keys))
    if unique and conn.dialect.name != "postgresql":
        sqlite_batch.execute_values(
            sql.dbapi(conn), _SQLITE_DELETE_HEAD, unique, _SQLITE_DELETE_TAIL
        )
        return len(unique)
    params = [{"a": a, "t": t, "k": k, "y": y} for a, t, k, y in unique]
    if params:
        stmt = sa.delete(_T).where(
            _T.c.automation_id == sa.bindparam("a"),
            _T.c.trigger_id == sa.bindparam("t"),
            _T.c.kind == sa.bindparam("k"),
            _T.c.key == sa.bindparam("y"),
        )
        conn.execute(stmt, params)
    return len(params)


def _rows(result: Iterable[sa.Row[Any]]) -> Iterable[StateRow]:
    for row in result:
        yield StateRow(
            row.automation_id, row.trigger_id, row.kind, row.key, orjson.loads(row.data), row.due
        )


_COLUMNS = tuple(_T.columns)
_ORDER = (_T.c.automation_id, _T.c.trigger_id, _T.c.kind, _T.c.key)


def load_all(conn: Connection, *, kind: str | None = None) -> list[StateRow]:
    """Loads every record (what the engine restores at start), ordered by key.

    Args:
        conn: Any connection.
        kind: Only records of this kind.

    Returns:
        The records ordered by ``(automation_id, trigger_id, kind, key)``, so each automation's
        records are contiguous (see :func:`load_grouped` for a dict).
    """
    query = sa.select(*_COLUMNS).order_by(*_ORDER)
    if kind is not None:
        query = query.where(_T.c.kind == kind)
    return list(_rows(conn.execute(query)))


RawRow = tuple[str, str, str, str, bytes, float | None]
"""A stored record as the database returns it: ``data`` still encoded."""

_RAW_SELECT = (
    f"SELECT {sql.column_list(_T)} FROM engine_state "
    "WHERE automation_id = ? ORDER BY trigger_id, kind, key"
)


def iter_raw(conn: Connection, automation_id: str) -> Iterator[RawRow]:
    """Streams one automation's records, ``data`` undecoded, ordered by ``(trigger_id, kind, key)``.

    The restart path: rows come straight from the DBAPI cursor as tuples, so the caller can
    rebuild its state from a stream without the whole table materialised as Python objects
    (``load_all`` for 2M records peaked at several hundred MB more than the state itself).

    Args:
        conn: A connection in a read transaction; consume the iterator inside it.
        automation_id: The automation (``""`` for engine-wide state).

    Yields:
        ``(automation_id, trigger_id, kind, key, data bytes, due)`` tuples.
    """
    yield from _stream(conn, _RAW_SELECT, (automation_id,))


_RAW_SCAN = f"SELECT {sql.column_list(_T)} FROM engine_state"


def iter_all_raw(conn: Connection) -> Iterator[RawRow]:
    """Streams every record, ``data`` undecoded, in storage order (no ORDER BY).

    One sequential scan: reading 2M records through the primary-key index (one random row
    lookup each) took 6.9 s on SQLite; in storage order it is a fraction of that.

    Args:
        conn: A connection in a read transaction; consume the iterator inside it.

    Yields:
        ``(automation_id, trigger_id, kind, key, data bytes, due)`` tuples, in no useful order.
    """
    yield from _stream(conn, _RAW_SCAN, ())


def _stream(conn: Connection, statement: str, params: tuple[Any, ...]) -> Iterator[RawRow]:
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        sql.ensure_transaction(conn)
        statement = statement.replace("?", "%s")
    cursor = dbapi.cursor()
    try:
        cursor.execute(statement, params)
        # the cursor's own iterator (C) rather than a Python loop over fetchmany() chunks: the
        # per-row Python work was a visible part of a 2M-record reload. Both sqlite3 and psycopg
        # return BLOB/BYTEA as bytes and rows as tuples.
        yield from cursor
    finally:
        cursor.close()


def load_automation(conn: Connection, automation_id: str) -> list[StateRow]:
    """Loads one automation's records, ordered by ``(trigger_id, kind, key)``."""
    query = sa.select(*_COLUMNS).where(_T.c.automation_id == automation_id).order_by(*_ORDER)
    return list(_rows(conn.execute(query)))


def delete_automation(
    conn: Connection, automation_id: str, *, trigger_id: str | None = None
) -> int:
    """Deletes all records of an automation (or of one of its triggers).

    Returns:
        The number of records deleted.
    """
    stmt = sa.delete(_T).where(_T.c.automation_id == automation_id)
    if trigger_id is not None:
        stmt = stmt.where(_T.c.trigger_id == trigger_id)
    return conn.execute(stmt).rowcount


def delete_stale_triggers(conn: Connection, automation_id: str, keep: Iterable[str]) -> int:
    """Deletes an automation's records whose trigger is not in ``keep`` (after an update).

    Args:
        conn: A connection in a write transaction.
        automation_id: The automation.
        keep: The trigger ids whose records stay.

    Returns:
        The number of records deleted.
    """
    stmt = sa.delete(_T).where(_T.c.automation_id == automation_id)
    kept = list(keep)
    if kept:
        stmt = stmt.where(_T.c.trigger_id.not_in(kept))
    return conn.execute(stmt).rowcount
