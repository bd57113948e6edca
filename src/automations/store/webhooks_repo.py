"""Webhooks and their delivery history: create, read, list, update, delete; record and list.

A webhook's authentication settings are one JSON column (the bearer token only as its hash; the
signing secret as given, since a signature can only be checked with it). Deliveries are rows of
orjson; only the last ``keep`` of each webhook are kept (:func:`record_deliveries` trims them in
the same transaction).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.domain import errors, webhooks
from automations.store import pagination, sql, tables

_T = tables.webhooks
_D = tables.webhook_deliveries
_TOKEN_KIND = "webhooks"
_DELIVERY_TOKEN_KIND = "webhook-deliveries"


def _auth_json(auth: webhooks.WebhookAuth) -> str:
    return orjson.dumps(
        {
            "bearer_token_hash": auth.bearer_token_hash,
            "signature_scheme": auth.signature_scheme.value,
            "signing_secret": auth.signing_secret,
            "signature_header": auth.signature_header,
            "tolerance_seconds": auth.tolerance_seconds,
        }
    ).decode("utf-8")


def _values(webhook: webhooks.Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "slug": webhook.slug,
        "name": webhook.name,
        "description": webhook.description,
        "enabled": webhook.enabled,
        "template": webhook.template,
        "strict": webhook.strict,
        "rate_limit": webhook.rate_limit,
        "auth": _auth_json(webhook.auth),
        "version": webhook.version,
        "created": webhook.created,
        "updated": webhook.updated,
    }


def _from_row(row: sa.Row[Any]) -> webhooks.Webhook:
    auth = orjson.loads(row.auth)
    return webhooks.Webhook(
        id=row.id,
        name=row.name,
        template=row.template,
        slug=row.slug,
        description=row.description,
        enabled=bool(row.enabled),
        strict=bool(row.strict),
        rate_limit=row.rate_limit,
        auth=webhooks.WebhookAuth(
            bearer_token_hash=auth.get("bearer_token_hash", ""),
            signature_scheme=webhooks.SignatureScheme(auth.get("signature_scheme", "none")),
            signing_secret=auth.get("signing_secret", ""),
            signature_header=auth.get("signature_header", ""),
            tolerance_seconds=float(
                auth.get("tolerance_seconds", webhooks.DEFAULT_TOLERANCE_SECONDS)
            ),
        ),
        created=row.created,
        updated=row.updated,
        version=row.version,
    )


def create(conn: Connection, webhook: webhooks.Webhook) -> webhooks.Webhook:
    """Stores a new webhook as given.

    Raises:
        errors.AlreadyExists: A webhook with that id (or slug) exists.
    """
    stmt = sql.insert_or_ignore(conn, _T).values(**_values(webhook)).returning(_T.c.id)
    if conn.execute(stmt).first() is None:
        raise errors.AlreadyExists(f"webhook {webhook.id!r} already exists")
    return webhook


def get(conn: Connection, webhook_id: str) -> webhooks.Webhook:
    """Loads one webhook.

    Raises:
        errors.NotFound: No webhook has that id.
    """
    row = conn.execute(sa.select(_T).where(_T.c.id == webhook_id)).first()
    if row is None:
        raise errors.NotFound(f"webhook {webhook_id!r} not found")
    return _from_row(row)


def list_all(conn: Connection) -> list[webhooks.Webhook]:
    """Every webhook, in creation order (what the HTTP endpoint's directory loads)."""
    rows = conn.execute(sa.select(_T).order_by(_T.c.created, _T.c.id)).all()
    return [_from_row(r) for r in rows]


def list_page(
    conn: Connection, *, page_size: int | None = None, page_token: str | None = None
) -> tuple[list[webhooks.Webhook], str]:
    """Lists webhooks in creation order, one page at a time.

    Raises:
        errors.InvalidArgument: On a bad ``page_token`` or ``page_size``.
    """
    return pagination.keyset_page(
        conn,
        sa.select(_T),
        kind=_TOKEN_KIND,
        columns=(_T.c.created, _T.c.id),
        page_size=page_size,
        page_token=page_token,
        from_row=_from_row,
        key_of=lambda w: (w.created, w.id),
    )


def update(conn: Connection, webhook: webhooks.Webhook) -> webhooks.Webhook:
    """Replaces a webhook (its id names it); bumps its version, keeps ``created``.

    Raises:
        errors.NotFound: No webhook has that id.
        errors.Aborted: It changed since ``webhook.version`` was read.
    """
    current = conn.execute(
        sa.select(_T.c.version, _T.c.created).where(_T.c.id == webhook.id)
    ).first()
    if current is None:
        raise errors.NotFound(f"webhook {webhook.id!r} not found")
    if current.version != webhook.version:
        raise errors.Aborted(
            f"webhook {webhook.id!r} changed meanwhile (version {current.version}, not "
            f"{webhook.version}); read it again"
        )
    stored = dataclasses.replace(webhook, version=current.version + 1, created=current.created)
    values = _values(stored)
    del values["id"], values["created"]
    result = conn.execute(
        sa.update(_T).where(_T.c.id == webhook.id, _T.c.version == current.version).values(**values)
    )
    if result.rowcount != 1:
        raise errors.Aborted(f"webhook {webhook.id!r} changed meanwhile; read it again")
    return stored


def delete(conn: Connection, webhook_id: str) -> None:
    """Deletes a webhook and its delivery history.

    Raises:
        errors.NotFound: No webhook has that id.
    """
    if conn.execute(sa.delete(_T).where(_T.c.id == webhook_id)).rowcount != 1:
        raise errors.NotFound(f"webhook {webhook_id!r} not found")
    conn.execute(sa.delete(_D).where(_D.c.webhook_id == webhook_id))


def _delivery_data(delivery: webhooks.Delivery) -> bytes:
    return orjson.dumps(
        {
            "method": delivery.method,
            "status": delivery.status,
            "duration": delivery.duration,
            "error": delivery.error,
            "rendered": delivery.rendered,
            "headers": dict(delivery.headers),
            "event_ids": list(delivery.event_ids),
        }
    )


def _delivery_from_row(row: sa.Row[Any]) -> webhooks.Delivery:
    data = orjson.loads(row.data)
    return webhooks.Delivery(
        id=row.id,
        webhook_id=row.webhook_id,
        received=row.received,
        method=data["method"],
        status=data["status"],
        duration=data["duration"],
        error=data["error"],
        rendered=data["rendered"],
        headers=data["headers"],
        event_ids=tuple(data["event_ids"]),
    )


def record_deliveries(
    conn: Connection, deliveries: Sequence[webhooks.Delivery], *, keep: int
) -> None:
    """Stores deliveries, then keeps only the newest ``keep`` of each webhook they belong to.

    Deliveries of webhooks deleted meanwhile are dropped.
    """
    if not deliveries:
        return
    touched = sorted({d.webhook_id for d in deliveries})
    existing = set(conn.execute(sa.select(_T.c.id).where(_T.c.id.in_(touched))).scalars())
    rows = [
        {"id": d.id, "webhook_id": d.webhook_id, "received": d.received, "data": _delivery_data(d)}
        for d in deliveries
        if d.webhook_id in existing
    ]
    if rows:
        conn.execute(sql.insert_or_ignore(conn, _D), rows)
    for webhook_id in sorted(existing):  # one order: replicas trim concurrently (cluster mode)
        _trim(conn, webhook_id, keep)


def _trim(conn: Connection, webhook_id: str, keep: int) -> None:
    boundary = conn.execute(
        sa.select(_D.c.received, _D.c.id)
        .where(_D.c.webhook_id == webhook_id)
        .order_by(_D.c.received.desc(), _D.c.id.desc())
        .offset(keep)
        .limit(1)
    ).first()
    if boundary is None:
        return
    key = sa.tuple_(_D.c.received, _D.c.id)
    bound = sa.tuple_(sa.literal(boundary.received, sa.Double), sa.literal(boundary.id, sa.String))
    conn.execute(sa.delete(_D).where(_D.c.webhook_id == webhook_id, key <= bound))


def list_deliveries(
    conn: Connection,
    webhook_id: str,
    *,
    page_size: int | None = None,
    page_token: str | None = None,
) -> tuple[list[webhooks.Delivery], str]:
    """A page of one webhook's deliveries, newest first.

    Raises:
        errors.InvalidArgument: On a bad ``page_token`` or ``page_size``.
    """
    return pagination.keyset_page(
        conn,
        sa.select(_D).where(_D.c.webhook_id == webhook_id),
        kind=_DELIVERY_TOKEN_KIND,
        columns=(_D.c.received, _D.c.id),
        page_size=page_size,
        page_token=page_token,
        descending=True,
        from_row=_delivery_from_row,
        key_of=lambda d: (d.received, d.id),
    )
