"""Times ``event_log.append``: events/s in 1,000-event batches, one transaction per batch (or
``--group N`` batches per transaction, as the writer's group commit does).

Not a test. Usage::

    .venv/bin/python bench/store_append.py                       # SQLite temp file
    .venv/bin/python bench/store_append.py postgresql:///scratch # an existing database

The store's tables in the given database are dropped and re-created: use a scratch database.

Every batch after the first repeats 10% of the previous batch's ids and 1% of its own, so the
dedup path is exercised. Prints events/s including orjson encoding of the domain events.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid

import sqlalchemy as sa

from automations.domain.events import Event
from automations.store import event_log, tables
from automations.store.database import Database


def make_batches(batches: int, size: int) -> list[list[Event]]:
    rng = random.Random(7)
    t0 = time.time()
    out: list[list[Event]] = []
    for b in range(batches):
        batch: list[Event] = []
        for i in range(size):
            rid = f"prefect.flow-run.{rng.randrange(200)}"
            batch.append(
                Event(
                    id=str(uuid.UUID(int=rng.getrandbits(128))),
                    event="prefect.flow-run.Completed" if i % 3 else "prefect.flow-run.Running",
                    occurred=t0 + b + i * 1e-4,
                    resource={"prefect.resource.id": rid, "prefect.resource.name": "run"},
                    related=(
                        {"prefect.resource.id": "prefect.flow.1", "prefect.resource.role": "flow"},
                    ),
                    payload={"n": i, "state": "Completed", "tags": ["a", "b"]},
                    received=t0 + b,
                )
            )
        if out:
            prev = out[-1]
            for j in range(0, size, 10):
                batch[j] = prev[j + 1]
        for j in range(5, size, 100):
            batch[j] = batch[j - 5]
        out.append(batch)
    return out


def run(url: str, batches: int, size: int, group: int = 1) -> tuple[float, float]:
    """Returns (events per wall second, events per CPU second of this process)."""
    db = Database(url)
    with db.write() as conn:
        tables.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    db.migrate()
    data = make_batches(batches, size)
    start = time.perf_counter()
    cpu = time.process_time()
    new = 0
    for first in range(0, len(data), group):
        with db.write() as conn:  # group commit: `group` client batches per transaction
            for batch in data[first : first + group]:
                new += sum(event_log.append(conn, batch))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    with db.read() as conn:
        assert event_log.count(conn) == new
        conn.execute(sa.text("SELECT 1"))
    with db.write() as conn:
        tables.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    db.dispose()
    return batches * size / elapsed, batches * size / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", nargs="?", default=None)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--group", type=int, default=1, help="batches per transaction")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{os.path.join(tmp, 'bench.db')}"
        results = [run(url, args.batches, args.size, args.group) for _ in range(args.repeat)]
    shown = Database(url).url.render_as_string(hide_password=True)
    rates = [wall for wall, _ in results]
    runs = ", ".join(f"{r:,.0f}" for r in rates)
    per_cpu = statistics.median(c for _, c in results)
    print(
        f"{shown}: append {args.batches} x {args.size} events, {args.group} per transaction: "
        f"median {statistics.median(rates):,.0f} events/s (runs: {runs}; "
        f"{per_cpu:,.0f} events per CPU-second of this process)"
    )


if __name__ == "__main__":
    main()
