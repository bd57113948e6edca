"""Firing history: one row per top-level firing, newest first when listed (``domain.codec``).

The scalar fields are columns; ``triggering_labels`` is the ``labels`` blob; the rest of the firing
(trigger type, posture, the triggering event itself, the nested child firings, and a Resolved
state or a metric's triggering value) is the ``data`` blob, so a firing reads back whole even after its triggering event was purged from the event log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.domain import codec, errors
from automations.domain import firings as firings_
from automations.store import pagination, sql, sqlite_batch, tables

_T = tables.firings
_TOKEN_KIND = "firings"


_COLUMNS = sql.column_names(_T)
"""The table's columns, in the order of ``_to_row``'s values."""
_SQLITE_INSERT_HEAD = f"INSERT INTO firings ({sql.column_list(_T)}) VALUES "
_SQLITE_GET_MANY = f"SELECT json_group_array({sqlite_batch.json_row(_T.columns)}) FROM firings WHERE id IN ({{keys}})"


def _to_row(firing: firings_.Firing) -> tuple[Any, ...]:
    """The ``firings`` row of a top-level firing, in ``_COLUMNS`` order."""
    event = firing.triggering_event
    return (
        firing.id,
        firing.automation_id,
        firing.trigger_id,
        firing.triggered,
        firing.triggering_event_id,
        codec.dumps(firing.triggering_labels),
        codec.dumps(
            {
                "trigger_type": firing.trigger_type,
                "posture": firing.posture,
                "triggering_event": None if event is None else codec.event_to_data(event),
                "child_firings": [codec.firing_to_data(c) for c in firing.child_firings],
                **codec.firing_extras(firing),
            }
        ),
    )


def _from_row(row: Sequence[Any]) -> firings_.Firing:
    """A firing from its columns in ``_COLUMNS`` order.

    ``row`` is a table row, or an item of ``_SQLITE_GET_MANY``'s array (the time as text, blobs
    as JSON text).
    """
    return codec.firing_from_data(
        {
            "id": row[0],
            "automation_id": row[1],
            "trigger_id": row[2],
            "triggered": float(row[3]),
            "triggering_labels": orjson.loads(row[5]),
            **orjson.loads(row[6]),
        }
    )


def insert_many(conn: Connection, items: Iterable[firings_.Firing]) -> int:
    """Records firings; a firing whose id is already stored is skipped.

    Args:
        conn: A connection in a write transaction.
        items: The firings (top-level ones; children are stored inside their parent).

    Returns:
        The number of firings given (not all drivers report skipped rows for executemany).
    """
    # Plain tuples to the DBAPI cursor: SQLAlchemy Core's executemany with per-row bind
    # processing was half of this function in the W1 writer profile (a firing every ~5 events).
    rows = [_to_row(f) for f in items]
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        sql.pg_bulk_insert(conn, _T, _COLUMNS, rows)
    else:
        sqlite_batch.execute_values(
            sql.dbapi(conn), _SQLITE_INSERT_HEAD, rows, " ON CONFLICT DO NOTHING"
        )
    return len(rows)


def get(conn: Connection, firing_id: str) -> firings_.Firing:
    """Loads one firing.

    Raises:
        errors.NotFound: No firing has that id.
    """
    row = conn.execute(sa.select(_T).where(_T.c.id == firing_id)).first()
    if row is None:
        raise errors.NotFound(f"firing {firing_id!r} not found")
    return _from_row(row)


def list_page(
    conn: Connection,
    *,
    automation_id: str | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> tuple[list[firings_.Firing], str]:
    """Lists firings newest first (by firing time, then id), one page at a time.

    Args:
        conn: Any connection.
        automation_id: Only this automation's firings.
        page_size: Firings per page (default ``pagination.DEFAULT_PAGE_SIZE``).
        page_token: The token returned with the previous page.

    Returns:
        The page and the next page's token ("" on the last page).

    Raises:
        errors.InvalidArgument: On a bad ``page_token`` or ``page_size``.
    """
    query = sa.select(_T)
    if automation_id is not None:
        query = query.where(_T.c.automation_id == automation_id)
    return pagination.keyset_page(
        conn,
        query,
        kind=_TOKEN_KIND,
        columns=(_T.c.fired, _T.c.id),
        page_size=page_size,
        page_token=page_token,
        descending=True,
        from_row=_from_row,
        key_of=lambda f: (f.triggered, f.id),
    )


def purge(conn: Connection, older_than: float) -> int:
    """Deletes firings that fired before ``older_than`` (retention).

    Returns:
        The number of firings deleted.
    """
    return conn.execute(sa.delete(_T).where(_T.c.fired < older_than)).rowcount


def get_many(conn: Connection, firing_ids: Iterable[str]) -> dict[str, firings_.Firing]:
    """Loads the firings with these ids (missing ones are left out)."""
    ids = list(set(firing_ids))
    out: dict[str, firings_.Firing] = {}
    if ids and conn.dialect.name == "sqlite":
        # one step per chunk rather than one per row, see sqlite_batch
        for values in sqlite_batch.fetch_json_in(sql.dbapi(conn), _SQLITE_GET_MANY, ids):
            out[values[0]] = _from_row(values)
        return out
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for row in conn.execute(sa.select(_T).where(_T.c.id.in_(chunk))):
            out[row.id] = _from_row(row)
    return out
