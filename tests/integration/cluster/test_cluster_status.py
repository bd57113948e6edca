"""The cluster's status: replicas (live or dead), the partitions each owns, lease ages, offsets."""

from __future__ import annotations

import signal
import time

import pytest

from automations.cluster import creation, fencing, leases, membership, status
from automations.domain import errors
from automations.store.database import Database
from tests.integration.cluster.member_process import MemberProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres


def read(database: Database) -> status.ClusterStatus:
    with database.read() as conn:
        return status.read(conn)


def test_a_database_without_a_cluster_says_so(database: Database) -> None:
    with pytest.raises(errors.FailedPrecondition) as refused:
        read(database)
    assert refused.value.reason == "NO_CLUSTER"


def test_the_status_shows_owners_leases_offsets_and_dead_replicas(
    database: Database, cluster_url: str
) -> None:
    with database.write() as conn:
        creation.create_or_read(conn, 4)
    me = membership.join(database, grpc_addr="127.0.0.1:7001", member_id="me")
    dead = MemberProcess(cluster_url, "dead", 5.0, [3])
    try:
        dead.ready()
        with database.write() as conn:
            grants = leases.acquire(conn, "me", [0, 1], lease=2.0)
            fencing.fence(conn, "me", [fencing.Checkpoint(1, grants[1].epoch, raw_seq=12)])
        time.sleep(0.1)
        dead.signal(signal.SIGKILL)
        wait_until(lambda: "dead" in me.probe().dead_ids, timeout=5)
        seen = read(database)
    finally:
        dead.close()
        me.leave()
    assert (seen.partition_count, seen.unowned) == (4, (2,))
    by_id = {replica.id: replica for replica in seen.replicas}
    assert (by_id["me"].alive, by_id["me"].partitions, by_id["me"].grpc_addr) == (
        True,
        (0, 1),
        "127.0.0.1:7001",
    )
    assert (by_id["dead"].alive, by_id["dead"].partitions) == (False, (3,))
    assert by_id["dead"].pid == dead.proc.pid
    assert 0 <= by_id["me"].heartbeat_age < by_id["me"].up_for + 1e-6
    zero, one, two, three = seen.partitions
    assert (one.owner, one.epoch, one.raw_seq, one.fwd_seq) == ("me", 1, 12, 0)
    assert 1.0 < one.lease_left <= 2.0
    assert one.held_for is not None and 0 <= one.held_for < 1.0
    assert (two.owner, two.held_for) == (None, None)
    assert (three.owner, three.lease_left > 4.0) == ("dead", True)  # dead, its lease still runs
    data = seen.to_json()
    assert data["unowned"] == [2]
    assert data["replicas"][1]["id"] == "me"
    assert data["partitions"][1]["raw_seq"] == 12
    assert zero.owner == "me"
