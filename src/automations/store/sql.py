"""Small dialect helpers: the ``INSERT ... ON CONFLICT`` forms both backends share."""

from __future__ import annotations

from collections.abc import Sequence

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


def upsert(
    conn: Connection, table: sa.Table, key: Sequence[str], update: Sequence[str]
) -> sa.Insert:
    """Returns ``INSERT ... ON CONFLICT (key) DO UPDATE SET col = excluded.col`` for ``update``.

    Args:
        conn: The connection (its dialect decides the SQL).
        table: The table.
        key: The conflict target columns (a primary key or unique constraint).
        update: The columns overwritten on conflict.
    """
    stmt: postgresql.Insert | sqlite.Insert
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(table)
    else:
        stmt = sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
    )
