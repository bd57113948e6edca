"""Small dialect helpers: ``INSERT ... ON CONFLICT`` forms, and PostgreSQL's fast bulk insert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_or_ignore(conn: Connection, table: sa.Table) -> sa.Insert:
    """Returns ``INSERT INTO table ... ON CONFLICT DO NOTHING`` for the connection's dialect.

    Conflicts are skipped rather than raised: on PostgreSQL a raised IntegrityError would abort the
    caller's whole (group-commit) transaction.
    """
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def column_names(table: sa.Table) -> tuple[str, ...]:
    """The table's column names in its own order (what hand-written SQL lists)."""
    return tuple(column.name for column in table.columns)


def column_list(table: sa.Table) -> str:
    """``a, b, c``: the table's columns, for hand-written SQL that names them all."""
    return ", ".join(column_names(table))


def pg_types(table: sa.Table) -> tuple[str, ...]:
    """The PostgreSQL type of each column, in the table's order (for COPY and staging tables)."""
    return tuple(_pg_array_type(column) for column in table.columns)


def _pg_array_type(column: sa.Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return "bool"
    if isinstance(kind, sa.Integer):
        return "int8"
    if isinstance(kind, sa.Double | sa.Float):
        return "float8"
    if isinstance(kind, sa.LargeBinary):
        return "bytea"
    return "text"


def pg_bulk_insert(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    on_conflict: str = "ON CONFLICT DO NOTHING",
    returning: str | None = None,
) -> list[tuple[Any, ...]]:
    """PostgreSQL: inserts many rows in one statement, one binary array parameter per column.

    ``INSERT INTO t (cols) SELECT * FROM unnest(%b::type[], ...)`` sends a handful of parameters
    whatever the row count, so it is several times faster than executemany or multi-row VALUES
    through SQLAlchemy (measured: 1,000-row batches, see ``bench/store_append.py``).

    Args:
        conn: A PostgreSQL (psycopg) connection.
        table: The table.
        columns: The columns given, in row order.
        rows: The rows; for ``DO UPDATE`` conflicts they must have distinct keys.
        on_conflict: The ``ON CONFLICT`` clause (raw SQL).
        returning: Columns to return (raw SQL), if any.

    Returns:
        The returned rows (empty without ``returning``).
    """
    if not rows:
        return []
    types = [_pg_array_type(table.c[name]) for name in columns]  # scalar types, cast to arrays
    arrays = tuple(list(values) for values in zip(*rows, strict=True))
    unnest = ", ".join(f"%b::{t}[]" for t in types)
    text = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({unnest}) "
        f"{on_conflict}" + (f" RETURNING {returning}" if returning else "")
    )
    with dbapi(conn).cursor() as cursor:
        cursor.execute(text, arrays)
        return list(cursor.fetchall()) if returning else []


def dbapi(conn: Connection) -> Any:
    """Returns the raw DBAPI connection, for the fast paths that bypass SQLAlchemy.

    Begins the connection's transaction first if it has none (:func:`ensure_transaction`).

    Returns:
        The ``sqlite3.Connection`` or ``psycopg.Connection`` underneath ``conn``.
    """
    ensure_transaction(conn)
    return conn.connection.dbapi_connection


def ensure_transaction(conn: Connection) -> None:
    """Begins the connection's transaction if it has none yet, as SQLAlchemy's autobegin would.

    Needed before statements sent on the raw DBAPI connection, which SQLAlchemy does not see: without
    it, a "commit as you go" caller's ``conn.commit()`` would have nothing to commit.
    """
    if not conn.in_transaction() and not getattr(
        conn.connection.dbapi_connection, "in_transaction", False
    ):  # (one the driver has open is the writer's kept connection's: ``Database.write``)
        conn.begin()
