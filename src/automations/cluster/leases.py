"""Partition leases with an epoch, in PostgreSQL time: acquire, renew, release.

A partition's row (``tables.partitions``) names its owner, the owner's *epoch* and when the lease
ends. Acquiring bumps the epoch; every commit of the owner checks it (``fencing``), so an owner
that lost its partition (killed, stopped past its lease, cut off) can commit nothing after the
new owner acquired, whatever the clocks say. Leases only decide *when* a partition may be taken
over: a partition is free when it has no owner, its lease ended (PostgreSQL's clock, so replica
clocks do not matter), its owner was found dead (``membership``), or its owner left the members.

Every function takes a connection and never commits, as the store's repositories. Run each in a
short transaction of its own (a lease counts from the statement, but lasts only once committed)
and commit before relying on its result: in particular load a
partition's state only after the acquisition committed, so that the load sees the previous
owner's last commit. Statements that lock several partition rows lock them in partition order
(no deadlock between a renewal and a commit of the same owner); an acquisition never waits for a
row lock (a row locked by an owner's commit in flight is skipped and tried again next round).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.domain import errors

DEFAULT_LEASE_SECONDS = 5.0
"""How long an acquisition or renewal holds a partition."""

DEFAULT_RENEW_SECONDS = 1.0
"""How often an owner renews its leases."""

DEFAULT_PROBE_SECONDS = 0.2
"""How often a replica probes its peers' advisory locks (``membership``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseTiming:
    """How long leases last and how often they are renewed and peers probed.

    Attributes:
        lease: Seconds an acquisition or a renewal holds a partition (PostgreSQL time).
        renew_every: Seconds between an owner's renewals (less than ``lease``: a few renewals
            may fail in a row before the lease ends).
        probe_every: Seconds between probes of the members' advisory locks.
    """

    lease: float = DEFAULT_LEASE_SECONDS
    renew_every: float = DEFAULT_RENEW_SECONDS
    probe_every: float = DEFAULT_PROBE_SECONDS

    def __post_init__(self) -> None:
        if not self.lease > 0:
            raise errors.InvalidArgument("lease", f"must be positive, got {self.lease}")
        if not 0 < self.renew_every < self.lease:
            raise errors.InvalidArgument(
                "renew_every",
                f"must be positive and shorter than the lease ({self.lease} s), "
                f"got {self.renew_every}",
            )
        if not self.probe_every > 0:
            raise errors.InvalidArgument("probe_every", f"must be positive, got {self.probe_every}")


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """An acquired partition: the epoch to fence with and where its input resumes.

    Attributes:
        partition: The partition.
        epoch: The new epoch; every commit for the partition names it (``fencing.Checkpoint``).
        lease_until: When the lease ends unless renewed (PostgreSQL time, epoch seconds).
        raw_seq: The last raw-log sequence whose effects are committed (resume at + 1).
        fwd_seq: The last forward-log sequence whose effects are committed (resume at + 1).
        relayed_seq: The last raw sequence whose outbox rows were relayed.
        clock: The partition's event clock as last committed (``EventClock.to_data()``), if any.
        watermarks: Per source partition, the last forwarded sequence applied.
        previous_owner: Who held it before (None: nobody since the cluster was created, or a
            graceful release).
    """

    partition: int
    epoch: int
    lease_until: float
    raw_seq: int
    fwd_seq: int
    relayed_seq: int
    clock: dict[str, Any] | None
    watermarks: dict[int, int]
    previous_owner: str | None


_NOW = "date_part('epoch', clock_timestamp())"
"""PostgreSQL's wall time (not the transaction's start, so a long transaction cannot shorten a
lease it grants)."""

_ACQUIRE = sa.text(
    f"""
    WITH candidate AS (
        SELECT "partition", owner AS previous_owner FROM partitions
        WHERE "partition" = ANY(CAST(:partitions AS integer[]))
          AND EXISTS (SELECT 1 FROM cluster_members WHERE id = :me)
          AND (owner IS NULL
               OR owner = :me
               OR lease_until < {_NOW}
               OR owner = ANY(CAST(:dead AS text[]))
               OR NOT EXISTS (SELECT 1 FROM cluster_members m WHERE m.id = partitions.owner))
        ORDER BY "partition"
        FOR UPDATE SKIP LOCKED
    ), acquired AS (
        UPDATE partitions AS p
        SET owner = :me, epoch = p.epoch + 1, lease_until = {_NOW} + :lease
        FROM candidate AS c
        WHERE p."partition" = c."partition"
        RETURNING p."partition", p.epoch, p.lease_until, p.raw_seq, p.fwd_seq, p.relayed_seq,
                  p.clock, p.watermarks, c.previous_owner
    ), history AS (
        INSERT INTO partition_history ("partition", epoch, owner, previous_owner, acquired)
        SELECT "partition", epoch, :me, previous_owner, {_NOW} FROM acquired
    )
    SELECT * FROM acquired ORDER BY "partition"
    """
)

_RENEW = sa.text(
    f"""
    WITH held AS (
        SELECT p."partition" FROM partitions AS p
        JOIN unnest(CAST(:partitions AS integer[]), CAST(:epochs AS bigint[])) AS h(pt, ep)
          ON p."partition" = h.pt AND p.epoch = h.ep
        WHERE p.owner = :me
        ORDER BY p."partition"
        FOR UPDATE OF p
    )
    UPDATE partitions AS p SET lease_until = {_NOW} + :lease
    FROM held WHERE p."partition" = held."partition"
    RETURNING p."partition"
    """
)

_RELEASE = sa.text(
    f"""
    WITH held AS (
        SELECT p."partition" FROM partitions AS p
        JOIN unnest(CAST(:partitions AS integer[]), CAST(:epochs AS bigint[])) AS h(pt, ep)
          ON p."partition" = h.pt AND p.epoch = h.ep
        WHERE p.owner = :me
        ORDER BY p."partition"
        FOR UPDATE OF p
    )
    UPDATE partitions AS p SET owner = NULL, lease_until = {_NOW}
    FROM held WHERE p."partition" = held."partition"
    RETURNING p."partition"
    """
)


def acquire(
    conn: Connection,
    member_id: str,
    partitions: Collection[int],
    *,
    dead: Iterable[str] = (),
    lease: float = DEFAULT_LEASE_SECONDS,
) -> list[Grant]:
    """Acquires those of ``partitions`` that are free, in one statement; never waits.

    A partition is free when it has no owner, its lease ended, its owner is in ``dead`` or no
    longer a member, or its owner is ``member_id`` itself (an earlier incarnation under the same
    id: acquiring again bumps the epoch and fences it; do not acquire a partition you hold). Each
    acquisition bumps the epoch, starts a lease of ``lease`` seconds and adds a
    ``partition_history`` row. Partitions held by a live owner, or whose row is locked by a
    commit in flight, are left out. Nothing is acquired unless ``member_id`` has joined.

    Args:
        conn: A PostgreSQL connection in a transaction (commit it before loading state).
        member_id: The acquiring member (``membership.Membership.id``).
        partitions: The partitions to try.
        dead: Members a probe found dead (``membership.Probe.dead_ids``).
        lease: The lease's length in seconds.

    Returns:
        What was acquired, in partition order.
    """
    if not partitions:
        return []
    rows = conn.execute(
        _ACQUIRE,
        {
            "partitions": sorted(set(partitions)),
            "me": member_id,
            "dead": sorted(set(dead)),
            "lease": float(lease),
        },
    ).all()
    return [
        Grant(
            partition=int(row.partition),
            epoch=int(row.epoch),
            lease_until=float(row.lease_until),
            raw_seq=int(row.raw_seq),
            fwd_seq=int(row.fwd_seq),
            relayed_seq=int(row.relayed_seq),
            clock=None if row.clock is None else orjson.loads(row.clock),
            watermarks=decode_watermarks(row.watermarks),
            previous_owner=row.previous_owner,
        )
        for row in rows
    ]


def renew(
    conn: Connection,
    member_id: str,
    held: Mapping[int, int],
    *,
    lease: float = DEFAULT_LEASE_SECONDS,
) -> set[int]:
    """Extends the leases of every partition still held, in one statement.

    A lease that ran out is extended too if nobody acquired the partition meanwhile (the epoch
    is unchanged, so the owner never lost it). Measure the lease from *before* the call on the
    local monotonic clock when deciding how long to go on without a successful renewal.

    Args:
        conn: A PostgreSQL connection in a transaction.
        member_id: The owner.
        held: ``{partition: epoch}`` of the partitions it believes it holds.
        lease: The lease's new length in seconds, from now.

    Returns:
        The partitions still held; the others were taken over (drop them).
    """
    return _update_held(conn, _RENEW, member_id, held, lease)


def release(conn: Connection, member_id: str, held: Mapping[int, int]) -> set[int]:
    """Gives partitions up for a graceful handoff: no owner, the lease ended now.

    Commit the partitions' last batch first; another member can acquire them as soon as this
    commits. The epoch stays; the next acquisition bumps it.

    Args:
        conn: A PostgreSQL connection in a transaction.
        member_id: The owner.
        held: ``{partition: epoch}`` of the partitions to release.

    Returns:
        The partitions released (the others had been taken over already).
    """
    return _update_held(conn, _RELEASE, member_id, held, None)


def _update_held(
    conn: Connection,
    statement: sa.TextClause,
    member_id: str,
    held: Mapping[int, int],
    lease: float | None,
) -> set[int]:
    if not held:
        return set()
    ordered = sorted(held.items())
    params: dict[str, Any] = {
        "partitions": [partition for partition, _ in ordered],
        "epochs": [epoch for _, epoch in ordered],
        "me": member_id,
    }
    if lease is not None:
        params["lease"] = float(lease)
    return {int(row[0]) for row in conn.execute(statement, params)}


def encode_watermarks(watermarks: Mapping[int, int]) -> bytes:
    """The ``watermarks`` column's bytes for ``{source partition: sequence}``."""
    return orjson.dumps({str(source): int(seq) for source, seq in sorted(watermarks.items())})


def decode_watermarks(data: bytes | None) -> dict[int, int]:
    """Reads the ``watermarks`` column (``{}`` when empty)."""
    if not data:
        return {}
    return {int(source): int(seq) for source, seq in orjson.loads(data).items()}
