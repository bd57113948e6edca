"""SQLite statements that run in one step, for the writer thread's many-row reads and writes.

The sqlite3 module releases the GIL around every ``sqlite3_step()`` and takes it back afterwards.
On the writer thread, taking it back means queueing behind the event loop thread, which keeps it
for up to the interpreter's switch interval when it is busy (1 ms while serving, see
``server.SWITCH_INTERVAL_SECONDS``; Python's default is 5 ms). What a statement costs there is
counted in steps, not rows: ``executemany()`` steps once per parameter set, a ``SELECT`` once per
row, ``RETURNING`` once per returned row. Measured with one other thread running Python: 500 rows
read with ``fetchall()`` took 900 ms, the same rows as one JSON row 8 ms (0.45 / 0.38 ms alone).

Two forms keep a many-row statement to one step:

- :func:`execute_values`: the rows as one multi-row ``VALUES`` list (``INSERT ... VALUES (...),
  (...)``, ``WITH v(...) AS (VALUES ...) UPDATE ... FROM v``), in chunks under the library's
  bound-variable limit;
- :func:`fetch_json`: a ``SELECT`` whose rows are aggregated into one JSON array
  (``json_group_array``), decoded by orjson. Blobs do not fit in JSON: the stored ones are UTF-8
  JSON, read as text (``CAST(col AS TEXT)``). SQLite's JSON writes REALs with 15 significant digits,
  which loses microseconds of a timestamp; :func:`real` formats them with 17 instead, which gives
  back the stored double for times since the epoch (checked for 200,000 random times, and tested).

PostgreSQL drivers fetch whole results at once and do not need any of this.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

import orjson
import sqlalchemy as sa

MAX_ROWS = 4000
"""Most rows per statement (fewer when the bound-variable limit says so). Fewer, larger
statements: 4,000-row event inserts ran ~107k rows/s against ~96k with 500 and ~88k with 100
(200k W1 events in 8,000-event transactions)."""

UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)
"""``UPDATE ... FROM`` is there (SQLite 3.33, 2020); callers fall back to ``executemany``."""


def real(column: str) -> str:
    """Returns SQL rendering the REAL ``column`` so that ``float()`` gives the stored value back."""
    return f"printf('%!.17g', {column})"


def json_row(columns: Iterable[sa.Column[Any]]) -> str:
    """``json_array(...)`` of the columns, in order, each one read back exactly.

    REALs go through :func:`real`; BLOBs (UTF-8 JSON in this schema) are read as text.
    """
    parts = []
    for column in columns:
        if isinstance(column.type, sa.Double | sa.Float):
            parts.append(real(column.name))
        elif isinstance(column.type, sa.LargeBinary):
            parts.append(f"CAST({column.name} AS TEXT)")
        else:
            parts.append(column.name)
    return f"json_array({', '.join(parts)})"


@functools.lru_cache(maxsize=64)
def values(width: int, count: int) -> str:
    """The placeholders of ``count`` rows of ``width`` values: ``(?,?),(?,?)``."""
    row = "(" + ",".join("?" * width) + ")"
    return ",".join([row] * count)


def chunk_size(dbapi: sqlite3.Connection, width: int) -> int:
    """Rows of ``width`` values per statement.

    ``MAX_ROWS``, or fewer if the library allows fewer bound variables.
    """
    limit = dbapi.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(MAX_ROWS, limit // max(1, width)))


def _in_lists(
    dbapi: sqlite3.Connection, statement: str, keys: Sequence[Any], params: Sequence[Any]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``statement`` with its ``{keys}`` list filled, and its parameters, chunk after chunk."""
    size = chunk_size(dbapi, 1) - len(params)
    for start in range(0, len(keys), size):
        chunk = keys[start : start + size]
        yield statement.format(keys=",".join("?" * len(chunk))), (*params, *chunk)


def execute_values(
    dbapi: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> int:
    """Runs ``head + "(?,..),(?,..)" + tail`` for the rows, one statement per chunk.

    Args:
        dbapi: The raw sqlite3 connection, inside the caller's transaction.
        head: SQL up to the ``VALUES`` list (e.g. ``"INSERT INTO t (a, b) VALUES "``).
        rows: Rows of equal width.
        tail: SQL after the list (e.g. ``" ON CONFLICT DO NOTHING"``).

    Returns:
        The total of the statements' row counts.
    """
    return sum(cursor.rowcount for _, _, cursor in execute_chunks(dbapi, head, rows, tail))


def execute_chunks(
    dbapi: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = ""
) -> Iterator[tuple[int, Sequence[Sequence[Any]], sqlite3.Cursor]]:
    """:func:`execute_values`, chunk by chunk, for callers that look at each statement's result.

    Yields:
        ``(start, chunk, cursor)`` after each chunk's statement ran: the chunk's offset in
        ``rows``, its rows, and the cursor it ran on (``rowcount``, ``lastrowid``).
    """
    if not rows:
        return
    width = len(rows[0])
    size = chunk_size(dbapi, width)
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        cursor = dbapi.execute(
            head + values(width, len(chunk)) + tail, tuple(chain.from_iterable(chunk))
        )
        yield start, chunk, cursor


def fetch_json(dbapi: sqlite3.Connection, query: str, params: Sequence[Any] = ()) -> list[Any]:
    """Runs a one-row ``SELECT json_group_array(...)`` and returns the decoded array ([] if NULL)."""
    row = dbapi.execute(query, tuple(params)).fetchone()
    if row is None or row[0] is None:
        return []
    value: list[Any] = orjson.loads(row[0])
    return value


def execute_in(
    dbapi: sqlite3.Connection, statement: str, keys: Sequence[Any], params: Sequence[Any] = ()
) -> int:
    """Runs a statement with an ``IN ({keys})`` list, in chunks of keys.

    Args:
        dbapi: The raw sqlite3 connection, inside the caller's transaction.
        statement: The SQL, with ``{keys}`` where the placeholders of the list go (after
            ``params``).
        keys: The values of the list.
        params: Parameters before the list.

    Returns:
        The total of the statements' row counts.
    """
    return sum(dbapi.execute(*one).rowcount for one in _in_lists(dbapi, statement, keys, params))


def fetch_json_in(
    dbapi: sqlite3.Connection, query: str, keys: Sequence[Any], params: Sequence[Any] = ()
) -> list[Any]:
    """:func:`fetch_json` for a query with an ``IN ({keys})`` list, in chunks of keys.

    Args:
        dbapi: The raw sqlite3 connection.
        query: The SQL, with ``{keys}`` where the placeholders of the list go (after ``params``).
        keys: The values of the list.
        params: Parameters before the list.

    Returns:
        The arrays' items, chunk after chunk.
    """
    out: list[Any] = []
    for one in _in_lists(dbapi, query, keys, params):
        out.extend(fetch_json(dbapi, *one))
    return out
