"""Cluster mode: a counter of automation changes on the cluster row.

Every automation change made in cluster mode increments it in the change's transaction; a replica
reads it before each partition commit and loads the changes first when it moved, so an event
published after a change, through any replica, is evaluated with it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-11 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cluster", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "automations_version",
                sa.BigInteger(),
                server_default="0",
                nullable=False,
                comment="incremented by every automation change in cluster mode",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("cluster", schema=None) as batch_op:
        batch_op.drop_column("automations_version")
