"""Automations: create, read, list, update, enable/disable, delete.

Rows hold Prefect's automation JSON (``prefect_json.dump_automation(..., with_ids=False)``) plus the
columns we filter and order on; the JSON is parsed back with ``prefect_json.parse_automation`` so a
stored automation is validated by exactly the code that accepted it.

Deleting an automation also deletes its engine state (buckets...), in the same transaction. Its
firings (audit history) and its outbox rows are kept: an action that was already due when the
automation was deleted still runs, and its history stays inspectable, as with Prefect, whose
``automation.triggered`` events outlive the automation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.domain import automations as automations_
from automations.domain import errors, prefect_json
from automations.store import pagination, sql, state_repo, tables

_TOKEN_KIND = "automations"
_T = tables.automations


def _values(automation: automations_.Automation) -> dict[str, Any]:
    definition = prefect_json.dump_automation(automation, with_ids=False)
    return {
        "id": automation.id,
        "name": automation.name,
        "enabled": automation.enabled,
        "version": automation.version,
        "created": automation.created,
        "updated": automation.updated,
        "definition": orjson.dumps(definition).decode("utf-8"),
    }


def _from_row(row: sa.Row[Any]) -> automations_.Automation:
    parsed = prefect_json.parse_automation(
        orjson.loads(row.definition),
        automation_id=row.id,
        created=row.created,
        updated=row.updated,
        checked=False,  # a stored row is read as it was accepted
    )
    return dataclasses.replace(parsed, enabled=bool(row.enabled), version=row.version)


def create(conn: Connection, automation: automations_.Automation) -> automations_.Automation:
    """Stores a new automation as given (the caller assigns id, times and version).

    Args:
        conn: A connection in a write transaction.
        automation: The automation, with its id set.

    Returns:
        The automation as stored.

    Raises:
        errors.AlreadyExists: An automation with that id exists (the transaction stays usable).
    """
    stmt = sql.insert_or_ignore(conn, _T).values(**_values(automation)).returning(_T.c.id)
    if conn.execute(stmt).first() is None:
        raise errors.AlreadyExists(f"automation {automation.id!r} already exists")
    return automation


def get(conn: Connection, automation_id: str) -> automations_.Automation:
    """Loads one automation.

    Raises:
        errors.NotFound: No automation has that id.
    """
    row = conn.execute(sa.select(_T).where(_T.c.id == automation_id)).first()
    if row is None:
        raise errors.NotFound(f"automation {automation_id!r} not found")
    return _from_row(row)


def list_page(
    conn: Connection,
    *,
    page_size: int | None = None,
    page_token: str | None = None,
    enabled: bool | None = None,
) -> tuple[list[automations_.Automation], str]:
    """Lists automations in creation order (then id), one page at a time.

    Args:
        conn: Any connection.
        page_size: Automations per page (default ``pagination.DEFAULT_PAGE_SIZE``).
        page_token: The token returned with the previous page.
        enabled: Only enabled (True) or disabled (False) ones; None for all.

    Returns:
        The page and the next page's token ("" on the last page).

    Raises:
        errors.InvalidArgument: On a bad ``page_token`` or ``page_size``.
    """
    query = sa.select(_T)
    if enabled is not None:
        query = query.where(_T.c.enabled == enabled)
    return pagination.keyset_page(
        conn,
        query,
        kind=_TOKEN_KIND,
        columns=(_T.c.created, _T.c.id),
        page_size=page_size,
        page_token=page_token,
        from_row=_from_row,
        key_of=lambda a: (a.created, a.id),
    )


def list_enabled(conn: Connection) -> list[automations_.Automation]:
    """Returns every enabled automation (what the engine loads at start), in creation order."""
    rows = conn.execute(
        sa.select(_T).where(_T.c.enabled == sa.true()).order_by(_T.c.created, _T.c.id)
    ).all()
    return [_from_row(r) for r in rows]


def _missing_or_stale(
    conn: Connection, automation_id: str, expected_version: int | None
) -> errors.AutomationsError:
    current = conn.execute(sa.select(_T.c.version).where(_T.c.id == automation_id)).scalar()
    if current is None:
        return errors.NotFound(f"automation {automation_id!r} not found")
    return errors.FailedPrecondition(
        f"automation {automation_id!r} is at version {current}, not {expected_version}",
        reason="VERSION_MISMATCH",
    )


def update(
    conn: Connection,
    automation: automations_.Automation,
    *,
    updated: float | None = None,
    expected_version: int | None = None,
) -> automations_.Automation:
    """Replaces an automation's definition; bumps its version and sets ``updated``.

    ``created`` is kept from the stored row; ``automation.version`` is ignored (see
    ``expected_version``).

    Args:
        conn: A connection in a write transaction.
        automation: The new definition (its id names the automation to replace).
        updated: The update time, seconds since the epoch; default ``automation.updated``.
        expected_version: If given, update only if the stored version is this one (optimistic
            concurrency, the etag).

    Returns:
        The automation as stored (new version, times).

    Raises:
        errors.NotFound: No automation has that id.
        errors.FailedPrecondition: ``expected_version`` is stale (reason ``VERSION_MISMATCH``).
    """
    current = conn.execute(
        sa.select(_T.c.version, _T.c.created).where(_T.c.id == automation.id)
    ).first()
    if current is None:
        raise errors.NotFound(f"automation {automation.id!r} not found")
    if expected_version is not None and current.version != expected_version:
        raise _missing_or_stale(conn, automation.id, expected_version)
    stored = dataclasses.replace(
        automation,
        version=current.version + 1,
        created=current.created,
        updated=automation.updated if updated is None else updated,
    )
    values = _values(stored)
    del values["id"], values["created"]
    result = conn.execute(
        sa.update(_T)
        .where(_T.c.id == automation.id, _T.c.version == current.version)
        .values(**values)
    )
    if result.rowcount != 1:  # changed under us by another writer (PostgreSQL, several replicas)
        raise _missing_or_stale(conn, automation.id, current.version)
    return stored


def set_enabled(
    conn: Connection, automation_id: str, enabled: bool, *, updated: float
) -> automations_.Automation:
    """Enables or disables an automation (pause/resume); bumps its version.

    Raises:
        errors.NotFound: No automation has that id.
    """
    existing = get(conn, automation_id)
    return update(
        conn,
        dataclasses.replace(existing, enabled=enabled),
        updated=updated,
        expected_version=existing.version,
    )


def delete(conn: Connection, automation_id: str, *, expected_version: int | None = None) -> None:
    """Deletes an automation and its engine state; keeps its firings and outbox rows.

    Args:
        conn: A connection in a write transaction.
        automation_id: The automation.
        expected_version: If given, delete only if the stored version is this one.

    Raises:
        errors.NotFound: No automation has that id.
        errors.FailedPrecondition: ``expected_version`` is stale (reason ``VERSION_MISMATCH``).
    """
    stmt = sa.delete(_T).where(_T.c.id == automation_id)
    if expected_version is not None:
        stmt = stmt.where(_T.c.version == expected_version)
    if conn.execute(stmt).rowcount != 1:
        raise _missing_or_stale(conn, automation_id, expected_version)
    state_repo.delete_automation(conn, automation_id)


def count(conn: Connection) -> int:
    """Returns the number of automations."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(_T)).scalar_one())
