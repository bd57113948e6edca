"""The cluster row: PostgreSQL only, the partition count fixed by the first replica."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from automations.cluster import creation
from automations.domain import errors
from automations.store import tables
from automations.store.database import Database

pytestmark = pytest.mark.postgres


def partition_rows(database: Database) -> list[tuple[int, str | None, int]]:
    p = tables.partitions
    with database.read() as conn:
        rows = conn.execute(sa.select(p.c.partition, p.c.owner, p.c.epoch).order_by(p.c.partition))
        return [(int(r[0]), r[1], int(r[2])) for r in rows]


def test_the_first_replica_creates_every_partition_unowned(database: Database) -> None:
    with database.write() as conn:
        info = creation.create_or_read(conn, 8)
    assert info.partition_count == 8
    assert partition_rows(database) == [(p, None, 0) for p in range(8)]
    with database.write() as conn:
        assert creation.create_or_read(conn, 8) == info  # a second replica reads it


def test_a_replica_with_another_partition_count_is_refused_naming_both(
    database: Database,
) -> None:
    with database.write() as conn:
        creation.create_or_read(conn, 16)
    with pytest.raises(errors.FailedPrecondition) as refused, database.write() as conn:
        creation.create_or_read(conn, 32)
    assert refused.value.reason == "PARTITION_COUNT_MISMATCH"
    assert "this cluster has 16 partitions" in refused.value.message
    assert "started with 32" in refused.value.message
    assert len(partition_rows(database)) == 16


def test_replicas_starting_together_create_one_cluster(database: Database) -> None:
    counts: list[int] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        try:
            barrier.wait()
            with database.write() as conn:
                counts.append(creation.create_or_read(conn, 12).partition_count)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert counts == [12] * 4
    assert [p for p, _, _ in partition_rows(database)] == list(range(12))


@pytest.mark.parametrize("count", [0, -1, creation.MAX_PARTITIONS + 1])
def test_a_partition_count_out_of_range_names_the_field(database: Database, count: int) -> None:
    with pytest.raises(errors.InvalidArgument) as refused, database.write() as conn:
        creation.create_or_read(conn, count)
    assert refused.value.field == "partition_count"
    with database.read() as conn:
        assert creation.read(conn) is None


def test_cluster_mode_on_sqlite_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    sqlite = Database(f"sqlite:///{tmp_path / 'single.db'}")
    try:
        with pytest.raises(errors.InvalidArgument) as refused:
            creation.require_postgresql(sqlite)
    finally:
        sqlite.dispose()
    assert refused.value.field == "database_url"
    assert refused.value.reason == "CLUSTER_NEEDS_POSTGRESQL"
    assert "cluster mode needs PostgreSQL" in refused.value.message
    assert "single.db" in refused.value.message


def test_cluster_mode_on_postgresql_is_accepted(database: Database) -> None:
    creation.require_postgresql(database)
