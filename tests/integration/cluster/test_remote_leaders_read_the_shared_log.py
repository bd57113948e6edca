"""Which leaders other replicas processed, as PostgreSQL tells it (``cluster.remote_leaders``):
logged, not held as a follower, not a log write, and relayed through the commit that logged it."""

from __future__ import annotations

import pytest

from automations.cluster import partition_store, remote_leaders, routing
from automations.engine import ordering, state
from automations.store import event_log, tables
from automations.store.database import Database
from tests.factories import event

pytestmark = pytest.mark.postgres

Q = 8


@pytest.fixture
def db(database: Database) -> Database:
    with database.write() as conn:
        for table in (tables.events, tables.partition_state, tables.cluster_outbox):
            conn.execute(table.delete())
    return database


def log(db: Database, event_id: str, name: str = "test.leader", resource: str = "res.1") -> int:
    """Logs an event as its owner's commit does; returns its raw partition."""
    logged = event(event_id, name, resource_id=resource)
    with db.write() as conn:
        event_log.append(conn, [logged])
    return routing.event_partition(logged, Q)


def to_relay(db: Database, partition: int, count: int = 1) -> list[int]:
    """Adds outbox rows of ``partition`` (waiting for its relay); returns their ids."""
    message = partition_store.Message(partition, partition_store.FWD, (partition + 1) % Q, "", b"x")
    with db.write() as conn:
        partition_store.add_messages(conn, [message] * count, 0.0)
        pending = partition_store.pending_messages(conn, [partition])
    return [m.id for m in pending][-count:]


def ready(db: Database, leaders: remote_leaders.RemoteLeaders, *ids: str) -> set[str]:
    with db.read() as conn:
        return leaders.ready(conn, ids)


def test_a_logged_leader_with_nothing_left_to_relay_is_ready_and_an_unlogged_one_is_not(
    db: Database,
) -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    log(db, "lead")
    assert ready(db, leaders, "lead", "nowhere") == {"lead"}


def test_a_leader_its_partition_holds_as_a_follower_is_ready_once_processed(db: Database) -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    partition = log(db, "lead")
    held = state.StateRecord("", "", state.FOLLOWER, "lead", {"id": "lead"}, None)
    with db.write() as conn:
        partition_store.upsert_state(conn, partition, [held])
    assert ready(db, leaders, "lead") == set()
    with db.write() as conn:  # the commit that processes it deletes its record
        partition_store.delete_state(conn, partition, [held])
    assert ready(db, leaders, "lead") == {"lead"}


def test_a_log_write_is_never_a_ready_leader(db: Database) -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    log(db, "noise", name=ordering.LOG_WRITE)
    assert ready(db, leaders, "noise") == set()


def test_a_leader_is_ready_once_its_partition_relayed_what_its_commit_wrote(db: Database) -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    partition = log(db, "lead")
    written = to_relay(db, partition, 2)  # the leader's commit's forwards
    assert ready(db, leaders, "lead") == set()
    to_relay(db, partition)  # a later commit's
    with db.write() as conn:
        partition_store.delete_messages(conn, written[:1])
    assert ready(db, leaders, "lead") == set()
    with db.write() as conn:
        partition_store.delete_messages(conn, written[1:])
    assert ready(db, leaders, "lead") == {"lead"}  # the later commit's row does not hold it


def test_rows_of_other_partitions_do_not_hold_a_leader(db: Database) -> None:
    leaders = remote_leaders.RemoteLeaders(Q)
    partition = log(db, "lead")
    to_relay(db, (partition + 1) % Q, 3)
    assert ready(db, leaders, "lead") == {"lead"}
