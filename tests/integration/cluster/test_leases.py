"""Partition leases: acquire, renew, expire, release; two members never hold one partition."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from automations.cluster import creation, leases, membership
from automations.domain import errors
from automations.store import tables
from automations.store.database import Database

pytestmark = pytest.mark.postgres

LEASE = 0.5


@pytest.fixture
def members(database: Database) -> Iterator[tuple[membership.Membership, ...]]:
    with database.write() as conn:
        creation.create_or_read(conn, 8)
    joined = tuple(
        membership.join(database, grpc_addr=f"127.0.0.1:{7000 + i}", member_id=name)
        for i, name in enumerate("abc")
    )
    try:
        yield joined
    finally:
        for member in joined:
            member.leave()


def acquire(
    database: Database, member: str, *partitions: int, dead: tuple[str, ...] = ()
) -> dict[int, int]:
    with database.write() as conn:
        grants = leases.acquire(conn, member, partitions, dead=dead, lease=LEASE)
    return {grant.partition: grant.epoch for grant in grants}


def owners(database: Database) -> dict[int, tuple[str | None, int]]:
    p = tables.partitions
    with database.read() as conn:
        rows = conn.execute(sa.select(p.c.partition, p.c.owner, p.c.epoch))
        return {int(r[0]): (r[1], int(r[2])) for r in rows}


def test_a_free_partition_is_acquired_with_the_next_epoch_and_its_offsets(
    database: Database, members: tuple[membership.Membership, ...]
) -> None:
    with database.write() as conn:
        conn.execute(
            tables.partitions.update()
            .where(tables.partitions.c.partition == 3)
            .values(
                raw_seq=41,
                fwd_seq=7,
                relayed_seq=40,
                clock=b'{"clock":1.5,"updated":2.0}',
                watermarks=b'{"1":9}',
            )
        )
        before = float(conn.execute(sa.select(creation.PG_NOW)).scalar_one())
        (grant,) = leases.acquire(conn, "a", [3], lease=LEASE)
    assert (grant.partition, grant.epoch, grant.previous_owner) == (3, 1, None)
    assert (grant.raw_seq, grant.fwd_seq, grant.relayed_seq) == (41, 7, 40)
    assert grant.clock == {"clock": 1.5, "updated": 2.0}
    assert grant.watermarks == {1: 9}
    assert before + LEASE <= grant.lease_until < before + LEASE + 1
    assert owners(database)[3] == ("a", 1)


def test_a_held_partition_is_not_acquired_until_its_lease_ends(
    database: Database, members: tuple[membership.Membership, ...]
) -> None:
    assert acquire(database, "a", 0, 1) == {0: 1, 1: 1}
    assert acquire(database, "b", 0, 1, 2) == {2: 1}
    time.sleep(LEASE + 0.05)
    assert acquire(database, "b", 0, 1) == {0: 2, 1: 2}
    assert owners(database)[0] == ("b", 2)


def test_renewal_keeps_partitions_and_reports_those_taken_over(
    database: Database, members: tuple[membership.Membership, ...]
) -> None:
    held = acquire(database, "a", 0, 1, 2)
    for _ in range(3):  # renewed for three leases' time: nobody can take them
        time.sleep(LEASE / 2)
        with database.write() as conn:
            assert leases.renew(conn, "a", held, lease=LEASE) == {0, 1, 2}
        assert acquire(database, "b", 0, 1, 2) == {}
    time.sleep(LEASE + 0.05)
    assert acquire(database, "b", 1) == {1: 2}
    with database.write() as conn:
        # partition 1 was lost; 0 and 2 ran out but nobody took them: still ours
        assert leases.renew(conn, "a", held, lease=LEASE) == {0, 2}
    assert acquire(database, "b", 0, 2) == {}


def test_an_ended_lease_is_taken_over_and_the_history_says_from_whom(
    database: Database, members: tuple[membership.Membership, ...]
) -> None:
    acquire(database, "a", 5)
    time.sleep(LEASE + 0.05)
    with database.write() as conn:
        (grant,) = leases.acquire(conn, "b", [5], lease=LEASE)
    assert (grant.epoch, grant.previous_owner) == (2, "a")
    h = tables.partition_history
    with database.read() as conn:
        rows = conn.execute(
            sa.select(h.c.epoch, h.c.owner, h.c.previous_owner)
            .where(h.c.partition == 5)
            .order_by(h.c.epoch)
        ).all()
    assert [tuple(r) for r in rows] == [(1, "a", None), (2, "b", "a")]


def test_two_members_racing_for_partitions_never_both_win(
    database: Database, members: tuple[membership.Membership, ...]
) -> None:
    def race(member: str, barrier: threading.Barrier, won: dict[str, dict[int, int]]) -> None:
        barrier.wait()
        won[member] = acquire(database, member, *range(8))

    for round_ in range(20):
        barrier = threading.Barrier(3)
        won: dict[str, dict[int, int]] = {}
        threads = [threading.Thread(target=race, args=(m, barrier, won)) for m in "abc"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [p for grants in won.values() for p in grants]
        assert sorted(winners) == list(range(8)), (round_, won)
        for member, grants in won.items():
            for partition, epoch in grants.items():
                assert owners(database)[partition] == (member, epoch)
        with database.write() as conn:  # hand everything back for the next round
            for member, grants in won.items():
                assert leases.release(conn, member, grants) == set(grants)


def test_a_released_partition_is_acquired_at_once(
    database: Database, members: tuple[membership.Membership, ...]
) -> None:
    held = acquire(database, "a", 4, 6)
    with database.write() as conn:
        assert leases.release(conn, "a", {4: held[4]}) == {4}
        assert leases.release(conn, "a", {6: held[6] + 1}) == set()  # not that epoch: kept
    assert acquire(database, "b", 4, 6) == {4: 2}
    assert owners(database)[4] == ("b", 2)
    assert owners(database)[6] == ("a", 1)


def test_a_dead_or_departed_owners_partitions_are_free_at_once(
    database: Database, members: tuple[membership.Membership, ...]
) -> None:
    acquire(database, "a", 0)
    acquire(database, "c", 1)
    assert acquire(database, "b", 0, dead=("a",)) == {0: 2}
    members[2].leave()  # gone without releasing: its row is gone too
    assert acquire(database, "b", 1) == {1: 2}


def test_only_a_joined_member_acquires(
    database: Database, members: tuple[membership.Membership, ...]
) -> None:
    assert acquire(database, "stranger", 0, 1) == {}
    assert owners(database)[0] == (None, 0)


def test_acquiring_never_waits_for_a_commit_in_flight(
    database: Database, members: tuple[membership.Membership, ...]
) -> None:
    acquire(database, "a", 2)
    time.sleep(LEASE + 0.05)
    with database.writer.connect() as holder:
        with holder.begin():  # an owner's commit holding the row (its fence)
            holder.execute(
                tables.partitions.update()
                .where(tables.partitions.c.partition == 2)
                .values(raw_seq=tables.partitions.c.raw_seq)
            )
            started = time.monotonic()
            assert acquire(database, "b", 2) == {}
            assert time.monotonic() - started < 0.5
        assert acquire(database, "b", 2) == {2: 2}


def test_lease_timing_is_checked() -> None:
    assert leases.LeaseTiming() == leases.LeaseTiming(lease=5.0, renew_every=1.0, probe_every=0.2)
    with pytest.raises(errors.InvalidArgument) as refused:
        leases.LeaseTiming(lease=1.0, renew_every=1.0)
    assert refused.value.field == "renew_every"
    with pytest.raises(errors.InvalidArgument) as refused:
        leases.LeaseTiming(lease=0)
    assert refused.value.field == "lease"
    with pytest.raises(errors.InvalidArgument) as refused:
        leases.LeaseTiming(probe_every=-1)
    assert refused.value.field == "probe_every"
