"""Opaque keyset-pagination tokens and the glob-pattern filters shared by the repositories.

A page token is the URL-safe base64 of the JSON array of the last row's sort key, tagged with the
listing it belongs to: clients must treat it as opaque, and a token from another listing (or a
corrupted one) is an ``InvalidArgument`` on ``page_token`` rather than a wrong page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.domain import errors

DEFAULT_PAGE_SIZE = 100
"""Rows per page when the caller does not say."""
MAX_PAGE_SIZE = 10_000
"""Larger requested pages are clamped to this."""


def encode_token(kind: str, key: Sequence[Any]) -> str:
    """Encodes the sort key of the last row of a page as an opaque token.

    Args:
        kind: Which listing the token belongs to (checked on decode).
        key: The sort-key values (JSON-serializable).

    Returns:
        The token, URL-safe base64 without padding.
    """
    raw = orjson.dumps([kind, *key])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_token(kind: str, token: str, types: Sequence[type]) -> list[Any]:
    """Decodes a token made by :func:`encode_token` for the listing ``kind``.

    Args:
        kind: The expected listing.
        token: The opaque token.
        types: The expected Python type of each key value (``float`` accepts ints).

    Returns:
        The sort-key values.

    Raises:
        errors.InvalidArgument: On ``page_token`` if the token is malformed or from another listing.
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        value = None
    if (
        isinstance(value, list)
        and len(value) == len(types) + 1
        and value[0] == kind
        and all(_is(v, t) for v, t in zip(value[1:], types, strict=True))
    ):
        return [float(v) if t is float else v for v, t in zip(value[1:], types, strict=True)]
    raise errors.InvalidArgument("page_token", "is not a valid page token for this listing")


def _is(value: object, expected: type) -> bool:
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def page_limit(page_size: int | None) -> int:
    """Returns the page size to use: ``DEFAULT_PAGE_SIZE`` for None or 0, at most ``MAX_PAGE_SIZE``.

    Raises:
        errors.InvalidArgument: On ``page_size`` if negative.
    """
    if page_size is None or page_size == 0:
        return DEFAULT_PAGE_SIZE
    if page_size < 0:
        raise errors.InvalidArgument("page_size", "must not be negative")
    return min(page_size, MAX_PAGE_SIZE)


def is_pattern(text: str) -> bool:
    """Whether ``text`` is a glob pattern (contains ``*``) rather than an exact value."""
    return "*" in text


def glob_condition(
    conn: Connection, column: sa.ColumnElement[str], patterns: Sequence[str]
) -> sa.ColumnElement[bool]:
    """Builds ``column`` matches any of ``patterns`` (``*`` matches any run of characters).

    Exact values become one ``IN``; patterns use ``GLOB`` on SQLite and ``LIKE`` with escaping on
    PostgreSQL (both case-sensitive, both able to use an index for a literal prefix).

    Args:
        conn: The connection (its dialect decides the SQL).
        column: The column to test.
        patterns: Exact values and ``*`` patterns; empty means "no condition" (true).

    Returns:
        The SQL condition.
    """
    exact = [p for p in patterns if not is_pattern(p)]
    globs = [p for p in patterns if is_pattern(p)]
    clauses: list[sa.ColumnElement[bool]] = []
    if exact:
        clauses.append(column.in_(exact))
    sqlite = conn.dialect.name == "sqlite"
    for pattern in globs:
        if pattern.strip("*") == "":
            return sa.true()
        if sqlite:
            escaped = "".join(f"[{c}]" if c in "?[" else c for c in pattern)
            clauses.append(column.op("GLOB")(escaped))
        else:
            escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append(column.like(escaped.replace("*", "%"), escape="\\"))
    if not clauses:
        return sa.true()
    return sa.or_(*clauses)


def keyset_page(
    conn: Connection,
    query: sa.Select[Any],
    *,
    kind: str,
    columns: tuple[sa.ColumnElement[float], sa.ColumnElement[str]],
    page_size: int | None,
    page_token: str | None,
    descending: bool = False,
    from_row: Any,
    key_of: Any,
) -> tuple[list[Any], str]:
    """Runs one page of ``query`` ordered by ``(time column, id column)``.

    Args:
        conn: Any connection.
        query: The filtered select.
        kind: The listing's token kind.
        columns: The (float time, string id) sort columns.
        page_size: Rows per page (see :func:`page_limit`).
        page_token: The token returned with the previous page.
        descending: Newest first.
        from_row: Builds an item from a row.
        key_of: Returns an item's ``(time, id)`` sort key.

    Returns:
        The items and the next page's token ("" on the last page).

    Raises:
        errors.InvalidArgument: On a bad ``page_token`` or ``page_size``.
    """
    limit = page_limit(page_size)
    time_column, id_column = columns
    if page_token:
        last_time, last_id = decode_token(kind, page_token, (float, str))
        key = sa.tuple_(time_column, id_column)
        bound = sa.tuple_(sa.literal(last_time, sa.Double), sa.literal(last_id, sa.String))
        query = query.where(key < bound if descending else key > bound)
    order = (time_column.desc(), id_column.desc()) if descending else (time_column, id_column)
    rows = conn.execute(query.order_by(*order).limit(limit + 1)).all()
    page = [from_row(r) for r in rows[:limit]]
    token = encode_token(kind, key_of(page[-1])) if len(rows) > limit else ""
    return page, token
