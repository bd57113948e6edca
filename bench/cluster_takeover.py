"""One partition's takeover in process: its rows read from PostgreSQL and its engine built.

    .venv/bin/python -m bench.cluster_takeover --buckets 10000 --runs 5

A throw-away database gets one partition of ``--buckets`` reactive ``for_each`` buckets (as the
failover benchmark's, due in an hour); then, alternated ``--runs`` times, the partition is taken
over eagerly (every bucket restored) and lazily (``engine.deferred``: only what is due within
``LOAD_AHEAD``), each reading the rows with ``partition_store.iter_state``; the lazy one's
background restore of the rest is measured apart. Prints medians of CPU (``process_time``) and
wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import sqlalchemy as sa

from automations.cluster import partition_store, partitioned
from automations.domain import events, prefect_json
from automations.engine.python_matcher import PythonMatcher
from automations.store.database import Database
from bench import cluster

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NAME = "automations_bench_takeover"
T0 = 1893456000.0
AUTOMATION = prefect_json.parse_automation(cluster.BUCKETS, automation_id="a1")
"""The failover benchmark's automation: reactive ``for_each`` buckets, due in an hour."""


def _fill(database: Database, buckets: int) -> None:
    engine = partitioned.PartitionedEngine(1, PythonMatcher())
    engine.load_automation(AUTOMATION, now=T0)
    engine.add_partition(0, now=T0)
    batch = [
        events.Event(
            id=f"e{k}",
            event="bench.key",
            occurred=T0,
            resource={"prefect.resource.id": f"bench.key.{k}"},
            related=(),
            received=T0,
        )
        for k in range(buckets)
    ]
    outcomes = engine.process_raw(0, batch, T0 + 1)
    with database.write() as conn:
        for outcome in outcomes:
            partition_store.upsert_state(conn, 0, outcome.step.upserts)


def _take_over(database: Database, *, lazy: bool) -> tuple[float, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    with database.read() as conn:
        rows = list(partition_store.iter_state(conn, 0))
    engine = partitioned.PartitionedEngine(1, PythonMatcher())
    engine.load_automation(AUTOMATION, now=T0 + 5)
    engine.add_partition(0, rows, now=T0 + 5, lazy=lazy)
    took_cpu, took_wall = time.process_time() - cpu, time.perf_counter() - wall
    cpu = time.process_time()
    engine.restore_deferred(len(rows))
    return took_cpu, took_wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buckets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{NAME}"'))
    database = Database(admin.url.set(database=NAME).render_as_string(hide_password=False))
    try:
        database.migrate()
        _fill(database, args.buckets)
        results: dict[str, list[tuple[float, float, float]]] = {"eager": [], "lazy": []}
        for _ in range(args.runs):
            for mode in results:
                results[mode].append(_take_over(database, lazy=mode == "lazy"))
        for mode, runs in results.items():
            cpu, wall, later = (statistics.median(r[i] for r in runs) * 1000 for i in range(3))
            print(
                f"{mode:5}: rows read and engine built {cpu:6.1f} ms CPU, {wall:6.1f} ms wall; "
                f"background restore of the rest {later:6.1f} ms CPU (medians of {args.runs})"
            )
    finally:
        database.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
