"""A replica's wish of who owns what: stale peers left out, itself never (``replica``)."""

from __future__ import annotations

from automations.cluster import assignment, membership, replica

LEASE = 5.0
PARTITIONS = 32


def member(member_id: str, heartbeat: float) -> membership.Member:
    return membership.Member(member_id, "host", 1, "127.0.0.1:1", hash(member_id), 0.0, heartbeat)


def test_a_peer_whose_heartbeat_is_a_lease_old_is_left_out() -> None:
    probe = membership.Probe(live=(member("a", 100.0), member("b", 100.0 - LEASE - 1)), dead=())
    assert replica.desired_owners(probe, "a", LEASE, PARTITIONS) == assignment.assign(
        PARTITIONS, ["a"]
    )


def test_a_replica_whose_own_heartbeat_lags_keeps_its_share() -> None:
    # its renewal loop slowed by load: the newest heartbeat (a peer's) is more than a lease ahead
    probe = membership.Probe(live=(member("a", 100.0 - LEASE - 1), member("b", 100.0)), dead=())
    wished = replica.desired_owners(probe, "a", LEASE, PARTITIONS)
    assert wished == assignment.assign(PARTITIONS, ["a", "b"])
    assert "a" in wished.values()


def test_a_replica_alone_owns_everything() -> None:
    probe = membership.Probe(live=(), dead=())
    assert set(replica.desired_owners(probe, "a", LEASE, PARTITIONS).values()) == {"a"}
