"""The fence: a replica that lost a partition commits nothing for it afterwards."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from automations.cluster import creation, fencing, leases, membership
from automations.store import tables
from automations.store.database import Database
from tests.integration.cluster.member_process import MemberProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres

LEASE = 0.5


@pytest.fixture
def me(database: Database) -> Iterator[membership.Membership]:
    with database.write() as conn:
        creation.create_or_read(conn, 4)
    joined = membership.join(database, grpc_addr="127.0.0.1:7001", member_id="me")
    try:
        yield joined
    finally:
        joined.leave()


def row(database: Database, partition: int) -> dict[str, object]:
    p = tables.partitions
    with database.read() as conn:
        found = conn.execute(sa.select(p).where(p.c.partition == partition)).one()
    return dict(found._mapping)


def take(
    database: Database, member: str, *partitions: int, dead: tuple[str, ...] = ()
) -> dict[int, int]:
    with database.write() as conn:
        grants = leases.acquire(conn, member, partitions, dead=dead, lease=LEASE)
    return {grant.partition: grant.epoch for grant in grants}


def test_an_owner_commits_its_offsets_clock_and_watermarks(
    database: Database, me: membership.Membership
) -> None:
    held = take(database, "me", 0, 1)
    with database.write() as conn:
        fencing.fence(
            conn,
            "me",
            [
                fencing.Checkpoint(0, held[0], raw_seq=10, clock={"clock": 3.0, "updated": 4.0}),
                fencing.Checkpoint(1, held[1], fwd_seq=5, relayed_seq=2, watermarks={0: 8}),
            ],
        )
    with database.write() as conn:  # None keeps what is stored
        fencing.fence(conn, "me", [fencing.Checkpoint(0, held[0], fwd_seq=1)])
    zero, one = row(database, 0), row(database, 1)
    assert (zero["raw_seq"], zero["fwd_seq"], zero["clock"]) == (
        10,
        1,
        b'{"clock":3.0,"updated":4.0}',
    )
    assert (one["raw_seq"], one["fwd_seq"], one["relayed_seq"]) == (0, 5, 2)
    assert leases.decode_watermarks(one["watermarks"]) == {0: 8}  # type: ignore[arg-type]


def test_a_commit_covering_a_lost_partition_is_refused_and_rolled_back(
    database: Database, me: membership.Membership
) -> None:
    other = membership.join(database, grpc_addr="127.0.0.1:7002", member_id="other")
    try:
        held = take(database, "me", 0, 1, 2)
        assert take(database, "other", 1, dead=("me",)) == {1: 2}  # "me" was wrongly thought dead
        with pytest.raises(fencing.OwnershipLost) as lost, database.write() as conn:
            conn.execute(tables.events.delete())  # stands for the batch's other writes
            fencing.fence(
                conn, "me", [fencing.Checkpoint(p, e, raw_seq=99) for p, e in held.items()]
            )
        assert lost.value.partitions == (1,)
        assert lost.value.reason == "PARTITION_OWNERSHIP_LOST"
        assert "partition(s) 1 " in lost.value.message
        assert [row(database, p)["raw_seq"] for p in (0, 1, 2)] == [0, 0, 0]
        with database.write() as conn:  # the rest commits without the lost one
            fencing.fence(conn, "me", [fencing.Checkpoint(0, held[0], raw_seq=99)])
        assert row(database, 0)["raw_seq"] == 99
    finally:
        other.leave()


def test_a_stale_epoch_is_refused_even_for_the_same_member(
    database: Database, me: membership.Membership
) -> None:
    first = take(database, "me", 3)
    second = take(database, "me", 3)  # a later incarnation under the same id
    assert second[3] == first[3] + 1
    with pytest.raises(fencing.OwnershipLost), database.write() as conn:
        fencing.fence(conn, "me", [fencing.Checkpoint(3, first[3], raw_seq=1)])
    with database.write() as conn:
        fencing.fence(conn, "me", [fencing.Checkpoint(3, second[3], raw_seq=2)])
    assert row(database, 3)["raw_seq"] == 2


def test_two_checkpoints_for_one_partition_are_a_mistake(
    database: Database, me: membership.Membership
) -> None:
    held = take(database, "me", 0)
    with pytest.raises(ValueError, match="one checkpoint per partition"), database.write() as conn:
        fencing.fence(conn, "me", [fencing.Checkpoint(0, held[0]), fencing.Checkpoint(0, held[0])])


def test_a_killed_owners_partitions_are_taken_over_at_once(
    database: Database, cluster_url: str, me: membership.Membership
) -> None:
    victim = MemberProcess(cluster_url, "victim", 5.0, [0, 1])
    try:
        assert victim.ready()["grants"] == {"0": 1, "1": 1}
        assert me.probe().live_ids == {"me", "victim"}  # (the probe's session is open)
        with database.write() as conn:  # (so is a writer connection)
            conn.execute(sa.select(1))
        victim.signal(signal.SIGKILL)
        killed = time.monotonic()
        seen = wait_until(lambda: "victim" in (d := me.probe().dead_ids) and d, interval=0.001)
        with database.write() as conn:
            grants = leases.acquire(conn, "me", [0, 1], dead=seen, lease=LEASE)
        took = time.monotonic() - killed
    finally:
        victim.close()
    print(f"kill -9 -> both partitions acquired by a survivor: {took * 1000:.1f} ms")
    assert [(g.partition, g.epoch, g.previous_owner) for g in grants] == [
        (0, 2, "victim"),
        (1, 2, "victim"),
    ]
    assert took < 1.0  # the victim's 5 s leases did not have to run out


def test_a_zombie_past_its_lease_commits_nothing_after_the_takeover(
    database: Database, cluster_url: str, me: membership.Membership
) -> None:
    zombie = MemberProcess(cluster_url, "zombie", LEASE, [2])
    try:
        assert zombie.ready()["grants"] == {"2": 1}
        zombie.send("fence 5")
        assert zombie.answer() == "committed"
        zombie.signal(signal.SIGSTOP)
        assert take(database, "me", 2) == {}  # its lease still runs
        time.sleep(LEASE + 0.1)
        assert me.probe().live_ids == {"me", "zombie"}  # stopped, not dead
        assert take(database, "me", 2) == {2: 2}
        with database.write() as conn:
            fencing.fence(conn, "me", [fencing.Checkpoint(2, 2, raw_seq=6)])
        zombie.signal(signal.SIGCONT)
        zombie.send("fence 1000")
        assert zombie.answer() == "lost [2]"
    finally:
        zombie.close()
    assert (row(database, 2)["owner"], row(database, 2)["epoch"], row(database, 2)["raw_seq"]) == (
        "me",
        2,
        6,
    )


def test_a_zombie_stopped_inside_its_commit_loses_the_partition_and_the_commit(
    database: Database, cluster_url: str, me: membership.Membership
) -> None:
    zombie = MemberProcess(cluster_url, "zombie", LEASE, [3])
    try:
        assert zombie.ready()["grants"] == {"3": 1}
        zombie.send("begin 7")
        assert zombie.answer() == "fenced"  # it holds the row lock of partition 3
        zombie.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        # the server ends its session once idle in the transaction for LEASE; the row is free then
        took = wait_until(lambda: take(database, "me", 3), interval=0.05, timeout=10)
        print(f"stopped inside a commit -> partition acquired: {time.monotonic() - stopped:.2f} s")
        assert took == {3: 2}
        zombie.signal(signal.SIGCONT)
        zombie.send("commit")
        assert zombie.answer().startswith("failed")
    finally:
        zombie.close()
    assert (row(database, 3)["owner"], row(database, 3)["raw_seq"]) == ("me", 0)
