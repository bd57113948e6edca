"""Incoming webhooks and their delivery history.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")  # identifiers: bytewise order


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", KEY, nullable=False),
        sa.Column("slug", KEY, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("rate_limit", sa.Double(), nullable=False),
        sa.Column(
            "auth",
            sa.Text(),
            nullable=False,
            comment="JSON: bearer token hash, signature scheme, signing secret, header, tolerance",
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
        sa.UniqueConstraint("slug", name=op.f("uq_webhooks_slug")),
    )
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhooks_created_id"), ["created", "id"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", KEY, nullable=False),
        sa.Column("webhook_id", KEY, nullable=False),
        sa.Column("received", sa.Double(), nullable=False),
        sa.Column(
            "data",
            sa.LargeBinary(),
            nullable=False,
            comment="orjson: method, status, duration, error, rendered, headers (masked), event ids",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_webhook_id_received"),
            ["webhook_id", "received"],
            unique=False,
        )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
