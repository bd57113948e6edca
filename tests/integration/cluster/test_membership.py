"""Membership: a member lives while its advisory lock is held, and a killed one is seen at once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from automations.cluster import membership
from automations.domain import errors
from automations.store import tables
from automations.store.database import Database
from tests.integration.cluster.member_process import MemberProcess
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def me(database: Database) -> Iterator[membership.Membership]:
    joined = membership.join(database, grpc_addr="127.0.0.1:7001", member_id="me")
    try:
        yield joined
    finally:
        joined.leave()


def member_ids(database: Database) -> set[str]:
    with database.read() as conn:
        return set(conn.execute(sa.select(tables.cluster_members.c.id)).scalars())


def test_a_joined_member_is_live_and_its_row_goes_when_it_leaves(database: Database) -> None:
    member = membership.join(database, grpc_addr="127.0.0.1:7001", member_id="a")
    other = membership.join(database, grpc_addr="127.0.0.1:7002")
    try:
        seen = other.probe()
        assert seen.live_ids == {"a", other.id}
        assert seen.dead == ()
        (row,) = [m for m in seen.live if m.id == "a"]
        assert row.grpc_addr == "127.0.0.1:7001"
        assert row.lock_key >= 1 << 32
        member.leave()
        member.leave()  # idempotent
        assert other.probe().live_ids == {other.id}
        assert member_ids(database) == {other.id}
    finally:
        member.leave()
        other.leave()


def test_a_member_killed_outright_is_seen_dead_within_a_second(
    database: Database, cluster_url: str, me: membership.Membership
) -> None:
    victim = MemberProcess(cluster_url, "victim", 5.0, [])
    try:
        victim.ready()
        assert me.probe().live_ids == {"me", "victim"}
        victim.signal(signal.SIGKILL)
        killed = time.monotonic()
        seen = wait_until(lambda: "victim" in me.probe().dead_ids, interval=0.001, timeout=5)
        detected = time.monotonic() - killed
    finally:
        victim.close()
    print(f"kill -9 -> seen dead by the probe: {detected * 1000:.1f} ms")
    assert seen
    assert detected < 1.0
    assert me.probe().live_ids == {"me"}


def test_a_stopped_member_keeps_its_lock_and_counts_as_live(
    cluster_url: str, me: membership.Membership
) -> None:
    stopped = MemberProcess(cluster_url, "stopped", 5.0, [])
    try:
        stopped.ready()
        stopped.signal(signal.SIGSTOP)
        time.sleep(0.3)
        assert me.probe().live_ids == {"me", "stopped"}
        stopped.signal(signal.SIGCONT)
    finally:
        stopped.close()


def test_pruning_deletes_only_dead_members_rows(
    database: Database, cluster_url: str, me: membership.Membership
) -> None:
    victim = MemberProcess(cluster_url, "victim", 5.0, [])
    survivor = MemberProcess(cluster_url, "survivor", 5.0, [])
    try:
        victim.ready()
        survivor.ready()
        victim.signal(signal.SIGKILL)
        victim.close()
        seen = wait_until(lambda: (p := me.probe()).dead and p, timeout=5)
        assert seen.dead_ids == {"victim"}
        assert me.prune(seen.dead) == 1
        assert member_ids(database) == {"me", "survivor"}
        assert me.prune(seen.dead) == 0
    finally:
        victim.close()
        survivor.close()


def test_a_stale_verdict_never_prunes_a_member_that_rejoined_under_its_id(
    database: Database, cluster_url: str, me: membership.Membership
) -> None:
    first = MemberProcess(cluster_url, "phoenix", 5.0, [])
    first.ready()
    first.signal(signal.SIGKILL)
    first.close()
    stale = wait_until(lambda: (p := me.probe()).dead and p, timeout=5)
    again = membership.join(database, grpc_addr="127.0.0.1:7003", member_id="phoenix")
    try:
        assert again.member.lock_key != stale.dead[0].lock_key
        assert me.prune(stale.dead) == 0
        assert me.probe().live_ids == {"me", "phoenix"}
    finally:
        again.leave()


def test_a_live_member_id_cannot_join_twice(database: Database, me: membership.Membership) -> None:
    with pytest.raises(errors.FailedPrecondition) as refused:
        membership.join(database, grpc_addr="127.0.0.1:7009", member_id="me")
    assert refused.value.reason == "MEMBER_ID_IN_USE"
    assert "gRPC 127.0.0.1:7001" in refused.value.message
    assert me.probe().live_ids == {"me"}
    me.heartbeat()  # the refused join left the live member's row alone


def test_heartbeats_move_forward_and_fail_once_the_lock_session_is_gone(
    database: Database, me: membership.Membership
) -> None:
    def heartbeat() -> float:
        with database.read() as conn:
            return float(
                conn.execute(
                    sa.select(tables.cluster_members.c.heartbeat).where(
                        tables.cluster_members.c.id == "me"
                    )
                ).scalar_one()
            )

    before = heartbeat()
    time.sleep(0.01)
    me.heartbeat()
    assert heartbeat() > before
    with database.write() as conn:  # the server ends the lock session (a restart, a network cut)
        ended = conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'automations member me'"
            )
        ).scalars()
        assert list(ended) == [True]
    with pytest.raises(membership.MembershipLost):
        me.heartbeat()
    assert wait_until(lambda: "me" in me.probe().dead_ids, timeout=5)


def test_a_heartbeat_fails_once_a_peer_pruned_the_member(
    database: Database, me: membership.Membership
) -> None:
    with database.write() as conn:
        conn.execute(tables.cluster_members.delete())
    with pytest.raises(membership.MembershipLost, match="pruned"):
        me.heartbeat()
