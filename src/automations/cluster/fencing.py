"""The fence: an owner's commit carries its partitions' offsets only while it still owns them.

Inside the transaction that commits a batch's effects, the owner first runs :func:`fence`: one
``UPDATE partitions SET raw_seq = ..., clock = ... WHERE partition = p AND epoch = e AND owner =
me`` for all the partitions the transaction covers. Under READ COMMITTED, an UPDATE racing a
takeover waits for the row and re-evaluates its WHERE on the new version, so the fence either
commits before the takeover (and the new owner, loading after its acquisition committed, sees
it) or matches no row after it. A short match raises :class:`OwnershipLost` and the caller rolls
the whole transaction back: a replica that lost a partition commits nothing for it afterwards.

The fence holds the partitions' row locks until the transaction ends, and an acquisition skips a
locked row. A replica stopped in the middle of a commit would therefore keep its partitions
until its session ends: :func:`bound_stalled_transactions` makes the server end a session left
idle inside a transaction (``idle_in_transaction_session_timeout``), after which the stalled
transaction is rolled back and its rows are free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection

from automations.cluster import leases
from automations.domain import errors


class OwnershipLost(errors.Aborted):
    """The fence matched fewer partitions than the commit covers: roll the transaction back.

    Attributes:
        partitions: The partitions no longer owned with the given epoch (drop their state and
            stop their consumers; retry the rest of the batch without them).
    """

    default_reason = "PARTITION_OWNERSHIP_LOST"

    def __init__(self, partitions: Iterable[int], member_id: str) -> None:
        self.partitions = tuple(sorted(partitions))
        listed = ", ".join(str(p) for p in self.partitions)
        super().__init__(
            f"member {member_id} no longer owns partition(s) {listed} with the epoch it holds: "
            "another replica took over; the commit is refused"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a commit records for one partition, and the epoch it must still hold.

    Fields left None keep their stored value.

    Attributes:
        partition: The partition.
        epoch: The epoch of the owner's grant (``leases.Grant.epoch``).
        raw_seq: The last raw-log sequence whose effects this commit includes.
        fwd_seq: The last forward-log sequence whose effects this commit includes.
        relayed_seq: The last raw sequence whose outbox rows have been relayed.
        clock: The partition's event clock (``EventClock.to_data()``).
        watermarks: Per source partition, the last forwarded sequence applied.
    """

    partition: int
    epoch: int
    raw_seq: int | None = None
    fwd_seq: int | None = None
    relayed_seq: int | None = None
    clock: Mapping[str, Any] | None = None
    watermarks: Mapping[int, int] | None = None


_FENCE = sa.text(
    """
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:partitions AS integer[]), CAST(:epochs AS bigint[]),
            CAST(:raw_seqs AS bigint[]), CAST(:fwd_seqs AS bigint[]),
            CAST(:relayed_seqs AS bigint[]), CAST(:clocks AS bytea[]),
            CAST(:watermarks AS bytea[])
        ) AS v(pt, ep, raw_seq, fwd_seq, relayed_seq, clock, watermarks)
    ), held AS (
        SELECT p."partition" FROM partitions AS p JOIN v ON p."partition" = v.pt
        WHERE p.epoch = v.ep AND p.owner = :me
        ORDER BY p."partition"
        FOR UPDATE OF p
    )
    UPDATE partitions AS p SET
        raw_seq = COALESCE(v.raw_seq, p.raw_seq),
        fwd_seq = COALESCE(v.fwd_seq, p.fwd_seq),
        relayed_seq = COALESCE(v.relayed_seq, p.relayed_seq),
        clock = COALESCE(v.clock, p.clock),
        watermarks = COALESCE(v.watermarks, p.watermarks)
    FROM held, v
    WHERE p."partition" = held."partition" AND v.pt = held."partition"
      AND p.epoch = v.ep AND p.owner = :me
    RETURNING p."partition", (SELECT automations_version FROM cluster) AS changes
    """
)


def fence(conn: Connection, member_id: str, checkpoints: Iterable[Checkpoint]) -> int | None:
    """Records the checkpoints if ``member_id`` still owns every partition with its epoch.

    Run it first in the commit's transaction (its row locks then cover the whole commit), and
    roll back on :class:`OwnershipLost`. One statement for any number of partitions; it also
    reads the cluster's automation change counter (``cluster.automations_version``), so that a
    commit learns whether automations changed without a query of its own.

    Args:
        conn: The commit's connection, in its transaction (PostgreSQL).
        member_id: The owner.
        checkpoints: One per partition the commit covers (at most one each).

    Returns:
        The change counter as of the statement; None when ``checkpoints`` is empty (or the
        cluster has no row yet).

    Raises:
        OwnershipLost: Some partition is no longer owned with the given epoch; the statement
            changed nothing the caller should keep (roll back).
        ValueError: Two checkpoints name one partition.
    """
    ordered = sorted(checkpoints, key=lambda checkpoint: checkpoint.partition)
    if not ordered:
        return None
    wanted = [checkpoint.partition for checkpoint in ordered]
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"one checkpoint per partition, got {wanted}")
    rows = list(
        conn.execute(
            _FENCE,
            {
                "me": member_id,
                "partitions": wanted,
                "epochs": [c.epoch for c in ordered],
                "raw_seqs": [c.raw_seq for c in ordered],
                "fwd_seqs": [c.fwd_seq for c in ordered],
                "relayed_seqs": [c.relayed_seq for c in ordered],
                "clocks": [None if c.clock is None else orjson.dumps(c.clock) for c in ordered],
                "watermarks": [
                    None if c.watermarks is None else leases.encode_watermarks(c.watermarks)
                    for c in ordered
                ],
            },
        )
    )
    fenced = {int(row[0]) for row in rows}
    if len(fenced) != len(wanted):
        raise OwnershipLost(set(wanted) - fenced, member_id)
    changes = rows[0][1]
    return None if changes is None else int(changes)


def bound_stalled_transactions(engine: sa.Engine, seconds: float) -> None:
    """Makes the server end any session of ``engine`` idle in a transaction for ``seconds``.

    Install it on the engine that commits fenced transactions, with the lease's length: a
    replica stopped (SIGSTOP, a long pause) between its fence and its commit then loses its
    session, its transaction is rolled back, and the partition rows it locked can be acquired;
    when it resumes, its commit fails. A live replica never sits that long inside a transaction.

    Args:
        engine: A PostgreSQL engine; applies to connections it opens from now on.
        seconds: The limit (rounded to whole milliseconds, at least 1).
    """
    milliseconds = str(max(1, round(seconds * 1000)))

    @event.listens_for(engine, "connect")
    def _bound(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (milliseconds,),
            )
        finally:
            cursor.close()
        dbapi_connection.commit()
