"""The event log: append with persistent dedup by event id, filtered listing, retention purge.

The ``events`` primary key *is* the persistent set of seen event ids: appending returns, per event,
whether it is new, and the pipeline only processes new ones. Purging old events therefore also
forgets their ids (a redelivery older than the retention is accepted again).

Append is the hot path and bypasses SQLAlchemy's statement compilation:

- SQLite: multi-row ``INSERT ... ON CONFLICT DO NOTHING`` in chunks of
  ``sqlite_batch.MAX_ROWS`` rows (under the bound-variable limit). When the row count shows
  that some rows were already there, the new ones are read back by rowid.
- PostgreSQL: one ``SELECT id ... = ANY(array)`` finds the ids already stored, then a binary
  ``COPY`` writes the new rows straight into ``events`` inside a savepoint. Should another writer
  have inserted one of them in between (several replicas), the savepoint is rolled back and the
  rows go through a per-session temporary table and ``INSERT ... SELECT ... ON CONFLICT DO NOTHING
  RETURNING id``. Measured against the alternatives (multi-row VALUES, ``unnest`` of arrays,
  pipelined executemany, always staging) it was the fastest, see ``bench/store_append.py``.

Duplicates inside one call are removed in Python first (the first occurrence wins), so the database
only ever sees distinct ids.
"""

from __future__ import annotations

import operator
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.domain import codec, validation
from automations.domain import events as events_
from automations.store import pagination, sql, sqlite_batch, tables

SQLITE_READ_CHUNK = 500
"""Ids per ``IN (...)`` lookup when reading events back."""
MAX_KEY_BYTES = events_.MAX_KEY_BYTES
"""Longest indexed text (event id, name, resource id, follows) in UTF-8 bytes. The API rejects
longer ones per event (``validation.validate_event``); checked here too, as one such event would
fail a whole group commit."""

_COLUMNS = sql.column_names(tables.events)
_COLUMN_LIST = sql.column_list(tables.events)
_PG_TYPES = sql.pg_types(tables.events)
_PG_STAGING = "_automations_events_in"
_PG_PREPARE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_PG_STAGING} "
    f"({', '.join(f'{c} {t}' for c, t in zip(_COLUMNS, _PG_TYPES, strict=True))}) "
    "ON COMMIT DELETE ROWS; "
    f"DELETE FROM {_PG_STAGING}"
)
_PG_COPY = f"COPY {_PG_STAGING} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_PG_COPY_EVENTS = f"COPY events ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_PG_EXISTING = "SELECT id FROM events WHERE id = ANY(%b::text[])"
_PG_INSERT = (
    f"INSERT INTO events ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_PG_STAGING} "
    f"ON CONFLICT DO NOTHING RETURNING id"
)
_TOKEN_KIND = "events"
_SQLITE_IDS_BETWEEN = "SELECT id FROM events WHERE rowid > ? AND rowid <= ?"

Row = tuple[str, str, float, float, str, str | None, bytes]
_ID = operator.itemgetter(0)
_NAME = operator.itemgetter(1)
_RESOURCE_ID = operator.itemgetter(4)
_FOLLOWS = operator.itemgetter(5)
_BODY_HEAD = b'{"resource":'
_BODY_TAIL = b',"related":[],"payload":{}}'


def encode_body(event: events_.Event) -> bytes:
    """Returns the orjson blob stored in ``events.data``: resource, related and payload.

    Args:
        event: The event.

    Returns:
        UTF-8 JSON bytes.
    """
    # Both ways return an exactly sized bytes object: orjson's own result keeps its 4 KiB working
    # buffer, and a group's worth of those (thousands of rows alive at once) cost fresh pages from
    # the kernel: 2.3 us per event instead of 0.2-0.4 us on the event loop.
    if not event.related and not event.payload:  # most events: only resource labels
        return _BODY_HEAD + orjson.dumps(event.resource, default=codec.default) + _BODY_TAIL
    return bytes(
        memoryview(
            orjson.dumps(
                {"resource": event.resource, "related": event.related, "payload": event.payload},
                default=codec.default,
            )
        )
    )


def to_row(event: events_.Event) -> Row:
    """Returns the ``events`` row of ``event``, in ``_COLUMNS`` order."""
    return (
        event.id,
        event.event,
        event.occurred,
        event.received,
        event.resource_id,
        event.follows,
        encode_body(event),
    )


def from_row(row: Sequence[Any]) -> events_.Event:
    """Rebuilds an event from an ``events`` row (columns in ``_COLUMNS`` order)."""
    body = orjson.loads(row[6])
    return events_.Event(
        id=row[0],
        event=row[1],
        occurred=row[2],
        resource=body["resource"],
        related=tuple(body["related"]),
        payload=body["payload"],
        follows=row[5],
        received=row[3],
    )


def append(
    conn: Connection, items: Sequence[events_.Event], *, rows: Sequence[Row] | None = None
) -> list[bool]:
    """Appends events to the log, skipping ids already stored.

    Args:
        conn: A connection inside the caller's (write) transaction; nothing is committed here.
        items: The events, in arrival order.
        rows: ``to_row(event)`` of each event when the caller encoded them already (the API
            does, on the event loop, which has time to spare while the writer thread is busy).

    Returns:
        One flag per event, in order: True if the event is new, False if its id is already in the
        log or appeared earlier in ``items`` (the first occurrence wins).

    Raises:
        errors.InvalidArgument: An id, name, resource id or ``follows`` is longer than
            ``MAX_KEY_BYTES`` (checked before anything is written).
    """
    if not items:
        return []
    n = len(items)
    if rows is None:
        rows = [to_row(event) for event in items]
    # The writer thread runs this for every event of a group while holding the GIL, so the usual
    # case (short keys, no id twice in the group, every row new) is column-wise C-level work
    # (map, set, max) instead of a Python loop over the events.
    ids = list(map(_ID, rows))
    if _longest(rows, ids) > MAX_KEY_BYTES // 4:  # at most 4 UTF-8 bytes per character
        for index, event in enumerate(items):
            validation.check_key_bytes(event, prefix=f"events[{index}].")
    first: dict[str, int] | None = None
    distinct: Sequence[Row] = rows
    if len(set(ids)) != n:
        first = {}
        kept: list[Row] = []
        for index, event_id in enumerate(ids):
            if event_id not in first:
                first[event_id] = index
                kept.append(rows[index])
        distinct = kept
    if conn.dialect.name == "postgresql":
        inserted = _append_postgresql(conn, distinct)
    else:
        inserted = _append_sqlite(conn, distinct)
    if first is None:
        return [True] * n if inserted is None else [event_id in inserted for event_id in ids]
    if inserted is None:
        return [first[event_id] == i for i, event_id in enumerate(ids)]
    return [first[event_id] == i and event_id in inserted for i, event_id in enumerate(ids)]


def _longest(rows: Sequence[Row], ids: list[str]) -> int:
    """The most characters of any indexed text of ``rows`` (``ids``: their ids, already read)."""
    return max(
        max(map(len, ids)),
        max(map(len, map(_NAME, rows))),
        max(map(len, map(_RESOURCE_ID, rows))),
        max(map(len, filter(None, map(_FOLLOWS, rows))), default=0),
    )


_SQLITE_INSERT_HEAD = f"INSERT INTO events ({_COLUMN_LIST}) VALUES "
_SQLITE_INSERT_TAIL = " ON CONFLICT DO NOTHING"


def _append_sqlite(conn: Connection, rows: Sequence[Row]) -> set[str] | None:
    """Inserts ``rows``; returns the ids of those that went in, or None when all of them did."""
    # The raw sqlite3 cursor: SQLAlchemy's result wrapping costs more than the fetch itself here.
    # No RETURNING: it makes SQLite hand back one row per step, and the sqlite3 module releases
    # and re-takes the GIL around every step, so the writer thread queued behind the event loop
    # for the GIL a thousand times per chunk (measured: ~40% of the append time). The row count
    # tells whether every row went in, which is all but always the case; when some did not, the
    # rows this statement added are read back by rowid (see _sqlite_rows_added). Each statement
    # run hands the GIL back and waits for it again, so there is no other query per chunk.
    inserted: set[str] | None = None  # None while every row so far went in
    for start, chunk, cursor in sqlite_batch.execute_chunks(
        sql.dbapi(conn), _SQLITE_INSERT_HEAD, rows, _SQLITE_INSERT_TAIL
    ):
        count = cursor.rowcount
        if count == len(chunk) and inserted is None:
            continue
        if inserted is None:
            inserted = set(map(_ID, rows[:start]))
        if count == len(chunk):
            inserted.update(map(_ID, chunk))
        elif count > 0:
            inserted.update(_sqlite_rows_added(cursor, count))
    return inserted


def _sqlite_rows_added(cursor: sqlite3.Cursor, count: int) -> list[str]:
    """The ids of the ``count`` rows the last INSERT added, when it skipped some as duplicates.

    One INSERT gives its new rows consecutive rowids (each the table's largest plus one), so
    they are the ``count`` rowids ending at ``lastrowid``. Only when the table's largest rowid
    has reached 2**63 - 1 does SQLite pick random ones, and the count read back tells.
    """
    last = cursor.lastrowid or 0
    cursor.execute(_SQLITE_IDS_BETWEEN, (last - count, last))
    added = [r[0] for r in cursor.fetchall()]
    if len(added) != count:  # pragma: no cover - needs 2**63 rows
        raise RuntimeError(f"could not tell which {count} events were new (rowids not consecutive)")
    return added


def _append_postgresql(conn: Connection, rows: Sequence[Row]) -> set[str] | None:
    """Inserts ``rows``; returns the ids of those that went in, or None when all of them did."""
    from psycopg import errors as pg_errors

    dbapi = sql.dbapi(conn)  # a psycopg.Connection
    with dbapi.cursor() as cursor:
        # never a prepared statement: its generic plan, made while the log was small, would keep
        # a sequential scan as the log grows until something analyzes the table (a cluster's
        # commits of ~30 events each took 100 ms at 30,000 events on a server without
        # autovacuum); planned each time, the lookup uses the primary key (~0.1 ms)
        cursor.execute(_PG_EXISTING, ([row[0] for row in rows],), prepare=False)
        existing = {r[0] for r in cursor.fetchall()}
        fresh = [row for row in rows if row[0] not in existing]
        if not fresh:
            return set()
        # Fast path: COPY straight into the log. Only another writer (a second replica) could have
        # inserted one of these ids since the check; then the COPY fails, the savepoint undoes it,
        # and the staged INSERT ... ON CONFLICT DO NOTHING settles who won, row by row.
        cursor.execute("SAVEPOINT automations_append")
        try:
            with cursor.copy(_PG_COPY_EVENTS) as copy:
                copy.set_types(_PG_TYPES)
                for row in fresh:
                    copy.write_row(row)
        except pg_errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT automations_append")
            return _append_postgresql_staged(cursor, fresh)
        cursor.execute("RELEASE SAVEPOINT automations_append")
        return None if len(fresh) == len(rows) else set(map(_ID, fresh))


def _append_postgresql_staged(cursor: Any, rows: Sequence[Row]) -> set[str]:
    cursor.execute(_PG_PREPARE)
    with cursor.copy(_PG_COPY) as copy:
        copy.set_types(_PG_TYPES)
        for row in rows:
            copy.write_row(row)
    cursor.execute(_PG_INSERT)
    return {r[0] for r in cursor.fetchall()}


def get_many(conn: Connection, ids: Iterable[str]) -> dict[str, events_.Event]:
    """Loads events by id.

    Args:
        conn: Any connection.
        ids: Event ids; unknown ones are left out of the result.

    Returns:
        id -> event for the ids found.
    """
    wanted = list(dict.fromkeys(ids))
    found: dict[str, events_.Event] = {}
    t = tables.events
    cols = [t.c[name] for name in _COLUMNS]
    for start in range(0, len(wanted), SQLITE_READ_CHUNK):
        chunk = wanted[start : start + SQLITE_READ_CHUNK]
        for row in conn.execute(sa.select(*cols).where(t.c.id.in_(chunk))):
            found[row[0]] = from_row(row)
    return found


def name_and_received(conn: Connection, event_id: str) -> tuple[str, float] | None:
    """The name and receipt time of the stored event ``event_id``, or None if it is not stored.

    Args:
        conn: Any connection (the writer's, inside its transaction, sees its own appends).
        event_id: The event's id.
    """
    t = tables.events
    row = conn.execute(sa.select(t.c.event, t.c.received).where(t.c.id == event_id)).first()
    return None if row is None else (str(row[0]), float(row[1]))


def list_events(
    conn: Connection,
    *,
    names: Sequence[str] = (),
    resource_id: str | Sequence[str] | None = None,
    start: float | None = None,
    end: float | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
    newest_first: bool = False,
) -> tuple[list[events_.Event], str]:
    """Lists events ordered by ``(occurred, id)``, one page at a time.

    Args:
        conn: Any connection.
        names: Event names or ``*`` glob patterns (any may match); empty means all names.
        resource_id: A primary resource id (or several, or ``*`` patterns); None means any.
        start: Only events with ``occurred >= start``.
        end: Only events with ``occurred < end``.
        page_size: Events per page (default ``pagination.DEFAULT_PAGE_SIZE``).
        page_token: The token returned with the previous page, with the same filters.
        newest_first: Order by ``(occurred, id)`` descending instead.

    Returns:
        The page and the token of the next page ("" on the last page).

    Raises:
        errors.InvalidArgument: On a bad ``page_token`` or ``page_size``.
    """
    t = tables.events
    limit = pagination.page_limit(page_size)
    cols = [t.c[name] for name in _COLUMNS]
    query = sa.select(*cols)
    if names:
        query = query.where(pagination.glob_condition(conn, t.c.event, names))
    if resource_id is not None:
        ids = [resource_id] if isinstance(resource_id, str) else list(resource_id)
        query = query.where(pagination.glob_condition(conn, t.c.resource_id, ids))
    if start is not None:
        query = query.where(t.c.occurred >= start)
    if end is not None:
        query = query.where(t.c.occurred < end)
    kind = _TOKEN_KIND + ("-desc" if newest_first else "")  # a token only fits its direction
    key = sa.tuple_(t.c.occurred, t.c.id)
    if page_token:
        occurred, last_id = pagination.decode_token(kind, page_token, (float, str))
        after = sa.tuple_(sa.literal(occurred, sa.Double), sa.literal(last_id, sa.String))
        query = query.where(key < after if newest_first else key > after)
    if newest_first:
        query = query.order_by(t.c.occurred.desc(), t.c.id.desc())
    else:
        query = query.order_by(t.c.occurred, t.c.id)
    rows = conn.execute(query.limit(limit + 1)).all()
    page = [from_row(r) for r in rows[:limit]]
    token = ""
    if len(rows) > limit:
        last = page[-1]
        token = pagination.encode_token(kind, (last.occurred, last.id))
    return page, token


def count(conn: Connection) -> int:
    """Returns the number of events in the log."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(tables.events)).scalar_one())


def purge(
    conn: Connection,
    older_than: float,
    *,
    limit: int | None = None,
    received_before: float | None = None,
) -> int:
    """Deletes events that occurred before ``older_than`` (retention).

    Args:
        conn: A connection in a write transaction.
        older_than: Seconds since the epoch; events with ``occurred < older_than`` go.
        limit: Delete at most this many (the oldest first), to keep write transactions short;
            call again until it returns less than ``limit``.
        received_before: Keeps the events received at or after it, whatever their ``occurred``
            (the engine's record of the ids it processed lately: ``EngineBackend``).

    Returns:
        The number of events deleted.
    """
    t = tables.events
    condition: sa.ColumnElement[bool] = t.c.occurred < older_than
    if received_before is not None:
        condition = condition & (t.c.received < received_before)
    if limit is not None:
        oldest = sa.select(t.c.id).where(condition).order_by(t.c.occurred).limit(limit)
        condition = t.c.id.in_(oldest)
    return conn.execute(sa.delete(t).where(condition)).rowcount
