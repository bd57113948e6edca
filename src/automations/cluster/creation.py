"""The cluster row: cluster mode needs PostgreSQL, and the partition count is fixed at creation.

The first replica of a cluster creates its one ``cluster`` row and its ``partitions`` rows (all
unowned, epoch 0, offsets 0) in one transaction; every later replica reads the row and must have
been started with the same partition count, because a partition's number is part of where events
and state live (``routing``), so changing it would move everything.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from automations.domain import errors
from automations.store import database as database_
from automations.store import tables

MAX_PARTITIONS = 4096
"""The most partitions a cluster may have (each costs a lease row and two ordered consumers)."""

PG_NOW = sa.func.date_part("epoch", sa.func.clock_timestamp())
"""PostgreSQL's wall time in seconds since the epoch: cluster times are the server's, never a
replica's, so replica clocks do not matter."""


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterInfo:
    """The cluster's row.

    Attributes:
        partition_count: The number of partitions, fixed at creation.
        created: When the first replica created the cluster (PostgreSQL time, epoch seconds).
    """

    partition_count: int
    created: float


def require_postgresql(database: database_.Database) -> None:
    """Refuses cluster mode on anything but PostgreSQL.

    Args:
        database: The database a replica was pointed at.

    Raises:
        errors.InvalidArgument: The database is not PostgreSQL (field ``database_url``, reason
            ``CLUSTER_NEEDS_POSTGRESQL``).
    """
    if database.dialect == "postgresql":
        return
    raise errors.InvalidArgument(
        "database_url",
        f"cluster mode needs PostgreSQL (postgresql://...), and this is {database.dialect} "
        f"({database.url.render_as_string(hide_password=True)}): an SQLite database serves one "
        "engine only; run without --cluster, or point --database-url at PostgreSQL",
        reason="CLUSTER_NEEDS_POSTGRESQL",
    )


def create_or_read(conn: Connection, partition_count: int) -> ClusterInfo:
    """Creates the cluster with ``partition_count`` partitions, or checks the existing one's count.

    Safe when several replicas start together: one creates the rows, the others wait for its
    commit and read them. The caller commits.

    Args:
        conn: A connection to the cluster's PostgreSQL database, in a transaction.
        partition_count: The count this replica was configured with.

    Returns:
        The cluster's row.

    Raises:
        errors.InvalidArgument: ``partition_count`` is out of range (field ``partition_count``).
        errors.FailedPrecondition: The cluster exists with another count (reason
            ``PARTITION_COUNT_MISMATCH``); the message names both.
    """
    if not 1 <= partition_count <= MAX_PARTITIONS:
        raise errors.InvalidArgument(
            "partition_count", f"must be between 1 and {MAX_PARTITIONS}, got {partition_count}"
        )
    row = tables.cluster
    created = conn.execute(
        postgresql.insert(row)
        .values(id=1, partition_count=partition_count, created=PG_NOW)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(row.c.id)
    ).first()
    if created is not None:
        conn.execute(
            sa.insert(tables.partitions),
            [
                {
                    "partition": partition,
                    "owner": None,
                    "epoch": 0,
                    "lease_until": 0.0,
                    "raw_seq": 0,
                    "fwd_seq": 0,
                    "relayed_seq": 0,
                }
                for partition in range(partition_count)
            ],
        )
    info = read(conn)
    assert info is not None  # inserted above, or by the replica whose insert we waited for
    if info.partition_count != partition_count:
        raise errors.FailedPrecondition(
            f"this cluster has {info.partition_count} partitions, fixed when it was created; "
            f"this replica was started with {partition_count}: start it with "
            f"{info.partition_count} (the partition count cannot change)",
            reason="PARTITION_COUNT_MISMATCH",
        )
    return info


def read(conn: Connection) -> ClusterInfo | None:
    """Returns the cluster's row, or None before the first replica created it."""
    found = conn.execute(
        sa.select(tables.cluster.c.partition_count, tables.cluster.c.created)
    ).first()
    return None if found is None else ClusterInfo(int(found[0]), float(found[1]))
