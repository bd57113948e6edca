"""The cluster's status: its replicas, the partitions each owns, lease ages and offsets.

Read from PostgreSQL alone (``automations cluster status`` adds the log's lag per partition). A
replica's liveness is its advisory lock (``membership.probe``); lease times are PostgreSQL's, so
the ages hold whatever the clocks of the replicas and of the machine asking.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.cluster import creation, membership
from automations.domain import errors
from automations.store import tables


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionStatus:
    """One partition.

    Attributes:
        partition: Its number.
        owner: The member holding its lease, or None.
        epoch: The current epoch (acquisitions so far).
        lease_left: Seconds until its lease ends (negative: ended that long ago).
        held_for: Seconds since its owner acquired it (None without an owner or a history row).
        raw_seq: The last raw-log sequence committed.
        fwd_seq: The last forward-log sequence committed.
        relayed_seq: The last raw sequence relayed.
    """

    partition: int
    owner: str | None
    epoch: int
    lease_left: float
    held_for: float | None
    raw_seq: int
    fwd_seq: int
    relayed_seq: int


@dataclasses.dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One member row.

    Attributes:
        id: The member id.
        host: Its host.
        pid: Its process id.
        grpc_addr: Its gRPC address.
        alive: Whether its advisory lock is held (False: dead, its row not yet pruned).
        up_for: Seconds since it joined.
        heartbeat_age: Seconds since its last heartbeat.
        partitions: The partitions whose lease names it.
    """

    id: str
    host: str
    pid: int
    grpc_addr: str
    alive: bool
    up_for: float
    heartbeat_age: float
    partitions: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The whole cluster as PostgreSQL sees it.

    Attributes:
        partition_count: The cluster's partition count.
        created: When the cluster was created (epoch seconds).
        now: PostgreSQL's time of this status (epoch seconds).
        replicas: Every member row, by id.
        partitions: Every partition, by number.
    """

    partition_count: int
    created: float
    now: float
    replicas: tuple[ReplicaStatus, ...]
    partitions: tuple[PartitionStatus, ...]

    @property
    def unowned(self) -> tuple[int, ...]:
        """Partitions with no owner or an ended lease."""
        return tuple(p.partition for p in self.partitions if p.owner is None or p.lease_left < 0)

    def to_json(self) -> dict[str, Any]:
        """The status as JSON-able data (``automations cluster status --json``)."""
        return {
            "partition_count": self.partition_count,
            "created": self.created,
            "now": self.now,
            "replicas": [dataclasses.asdict(replica) for replica in self.replicas],
            "partitions": [dataclasses.asdict(partition) for partition in self.partitions],
            "unowned": list(self.unowned),
        }


def read(conn: Connection) -> ClusterStatus:
    """Reads the cluster's status.

    Args:
        conn: A connection to the cluster's PostgreSQL database (not a member's lock session).

    Returns:
        The status.

    Raises:
        errors.FailedPrecondition: No replica ever started in cluster mode on this database
            (reason ``NO_CLUSTER``).
    """
    info = creation.read(conn)
    if info is None:
        raise errors.FailedPrecondition(
            "this database holds no cluster: no replica has started in cluster mode on it",
            reason="NO_CLUSTER",
        )
    now = float(conn.execute(sa.select(creation.PG_NOW)).scalar_one())
    probe = membership.probe(conn)
    partitions = _partitions(conn, now)
    owned: dict[str, list[int]] = {}
    for partition in partitions:
        if partition.owner is not None:
            owned.setdefault(partition.owner, []).append(partition.partition)
    replicas = [
        ReplicaStatus(
            id=member.id,
            host=member.host,
            pid=member.pid,
            grpc_addr=member.grpc_addr,
            alive=alive,
            up_for=now - member.started,
            heartbeat_age=now - member.heartbeat,
            partitions=tuple(owned.get(member.id, ())),
        )
        for members, alive in ((probe.live, True), (probe.dead, False))
        for member in members
    ]
    return ClusterStatus(
        partition_count=info.partition_count,
        created=info.created,
        now=now,
        replicas=tuple(sorted(replicas, key=lambda replica: replica.id)),
        partitions=tuple(partitions),
    )


def _partitions(conn: Connection, now: float) -> list[PartitionStatus]:
    p, h = tables.partitions, tables.partition_history
    acquired = (
        sa.select(h.c.acquired)
        .where(h.c.partition == p.c.partition, h.c.epoch == p.c.epoch)
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(
            p.c.partition,
            p.c.owner,
            p.c.epoch,
            p.c.lease_until,
            acquired,
            p.c.raw_seq,
            p.c.fwd_seq,
            p.c.relayed_seq,
        ).order_by(p.c.partition)
    ).all()
    return [
        PartitionStatus(
            partition=int(row[0]),
            owner=row[1],
            epoch=int(row[2]),
            lease_left=float(row[3]) - now,
            held_for=None if row[1] is None or row[4] is None else now - float(row[4]),
            raw_seq=int(row[5]),
            fwd_seq=int(row[6]),
            relayed_seq=int(row[7]),
        )
        for row in rows
    ]
