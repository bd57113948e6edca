"""Cluster mode: the cluster row, its members, partition leases and their history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")  # identifiers: bytewise order


def upgrade() -> None:
    op.create_table(
        "cluster",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False, comment="always 1"),
        sa.Column("partition_count", sa.Integer(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster")),
    )
    op.create_table(
        "cluster_members",
        sa.Column("id", KEY, nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("grpc_addr", sa.Text(), nullable=False),
        sa.Column(
            "lock_key",
            sa.BigInteger(),
            nullable=False,
            comment="the session advisory lock the replica holds while it lives",
        ),
        sa.Column("started", sa.Double(), nullable=False),
        sa.Column("heartbeat", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_members")),
        sa.UniqueConstraint("lock_key", name=op.f("uq_cluster_members_lock_key")),
    )
    op.create_table(
        "partitions",
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", KEY, nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("lease_until", sa.Double(), nullable=False),
        sa.Column("raw_seq", sa.BigInteger(), nullable=False),
        sa.Column("fwd_seq", sa.BigInteger(), nullable=False),
        sa.Column("relayed_seq", sa.BigInteger(), nullable=False),
        sa.Column("clock", sa.LargeBinary(), nullable=True, comment="orjson: the event clock"),
        sa.Column(
            "watermarks",
            sa.LargeBinary(),
            nullable=True,
            comment='orjson {"<source partition>": last forwarded sequence applied}',
        ),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_partitions")),
    )
    op.create_table(
        "partition_history",
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("owner", KEY, nullable=False),
        sa.Column("previous_owner", KEY, nullable=True),
        sa.Column("acquired", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("partition", "epoch", name=op.f("pk_partition_history")),
    )
    with op.batch_alter_table("partition_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_partition_history_acquired"), ["acquired"], unique=False
        )


def downgrade() -> None:
    op.drop_table("partition_history")
    op.drop_table("partitions")
    op.drop_table("cluster_members")
    op.drop_table("cluster")
