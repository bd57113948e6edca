"""Cluster mode, per partition: trigger state, invocations by partition, the relay's outbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")  # identifiers: bytewise order
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: a rowid alias


def upgrade() -> None:
    op.create_table(
        "partition_state",
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("automation_id", KEY, nullable=False),
        sa.Column("trigger_id", KEY, nullable=False),
        sa.Column("kind", KEY, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("due", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint(
            "partition",
            "automation_id",
            "trigger_id",
            "kind",
            "key",
            name=op.f("pk_partition_state"),
        ),
    )
    with op.batch_alter_table("partition_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_partition_state_due"), ["due"], unique=False)
    op.create_table(
        "cluster_outbox",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column(
            "partition",
            sa.Integer(),
            nullable=False,
            comment="whose owner relays the row (a forward's source partition)",
        ),
        sa.Column("stage", sa.String(length=8), nullable=False, comment="raw or fwd"),
        sa.Column("destination", sa.Integer(), nullable=False),
        sa.Column("msg_id", KEY, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False, comment="cluster.log_encoding"),
        sa.Column("created", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_outbox")),
    )
    with op.batch_alter_table("cluster_outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cluster_outbox_partition_id"), ["partition", "id"], unique=False
        )
    op.create_table(
        "cluster_lineage",
        sa.Column("event_id", KEY, nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("origin", KEY, nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_cluster_lineage")),
    )
    with op.batch_alter_table("cluster_lineage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cluster_lineage_created"), ["created"], unique=False)
    with op.batch_alter_table("action_invocations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "partition",
                sa.Integer(),
                nullable=True,
                comment="cluster mode: the partition whose owner dispatches it",
            )
        )
        batch_op.create_index(
            batch_op.f("ix_action_invocations_partition_status_next_attempt_at"),
            ["partition", "status", "next_attempt_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("action_invocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_invocations_partition_status_next_attempt_at"))
        batch_op.drop_column("partition")
    op.drop_table("cluster_lineage")
    op.drop_table("cluster_outbox")
    op.drop_table("partition_state")
