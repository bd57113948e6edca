"""Times cluster ownership on PostgreSQL: death detection, acquire, renew, fence, probe.

Not a test. Usage::

    .venv/bin/python -m bench.cluster_leases                        # a throw-away database
    .venv/bin/python -m bench.cluster_leases postgresql:///scratch  # an existing one (emptied)

- kill -9 -> dead: a member process joins and holds its advisory lock; from SIGKILL until a
  probe (polling every millisecond) sees its lock free, then until a survivor has acquired its
  partitions (one statement, committed).
- acquire / renew / release: one short transaction each, for 1 and for all partitions.
- fence: a commit carrying the fence for 1 and for 8 partitions (an empty batch otherwise), and
  the same commit without the fence, so the difference is the fence's cost.
- probe: one probe of 3 members (two statements).
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import sqlalchemy as sa

from automations.cluster import creation, fencing, leases, membership
from automations.store import tables
from automations.store.database import Database

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PARTITIONS = 32

_MEMBER = """
import sys, time
from automations.cluster import leases, membership
from automations.store.database import Database
database = Database(sys.argv[1])
member = membership.join(database, grpc_addr="127.0.0.1:1", member_id=sys.argv[2])
with database.write() as conn:
    leases.acquire(conn, member.id, [0, 1, 2, 3])
print("joined", flush=True)
time.sleep(3600)
"""


@contextlib.contextmanager
def scratch_database(url: str | None) -> Iterator[str]:
    """The given database, or a throw-away one dropped at the end."""
    if url:
        yield url
        return
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    name = f"automations_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def timed(action: Callable[[], object], runs: int) -> str:
    """Median and p99 of ``runs`` calls, in milliseconds."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return f"median {statistics.median(samples):6.2f} ms, p99 {samples[int(len(samples) * 0.99) - 1]:6.2f} ms"


def death_detection(database: Database, url: str, me: membership.Membership, runs: int) -> None:
    """kill -9 of a member process -> seen dead -> its partitions acquired."""
    detected: list[float] = []
    acquired: list[float] = []
    for run in range(runs):
        name = f"victim-{run}"
        proc = subprocess.Popen(
            [sys.executable, "-c", _MEMBER, url, name], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "joined"
        me.probe()
        proc.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        while name not in (dead := me.probe().dead_ids):
            time.sleep(0.001)
        detected.append((time.perf_counter() - killed) * 1000)
        with database.write() as conn:
            grants = leases.acquire(conn, me.id, [0, 1, 2, 3], dead=dead)
        acquired.append((time.perf_counter() - killed) * 1000)
        assert len(grants) == 4
        proc.wait()
        proc.stdout.close()
        me.prune(me.probe().dead)
    print(
        f"kill -9 -> seen dead:            median {statistics.median(detected):6.1f} ms, "
        f"max {max(detected):6.1f} ms ({runs} runs, probe polled every 1 ms)"
    )
    print(
        f"kill -9 -> 4 partitions acquired: median {statistics.median(acquired):6.1f} ms, "
        f"max {max(acquired):6.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="a scratch PostgreSQL database (emptied)")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with scratch_database(args.url) as url:
        database = Database(url)
        database.migrate()
        with database.write() as conn:
            for table in (tables.partition_history, tables.partitions, tables.cluster_members):
                conn.execute(table.delete())
            conn.execute(tables.cluster.delete())
            creation.create_or_read(conn, PARTITIONS)
        me = membership.join(database, grpc_addr="127.0.0.1:1", member_id="bench")
        try:
            death_detection(database, url, me, runs=10)
            every = list(range(PARTITIONS))
            held: dict[int, int] = {}

            def cycle(partitions: list[int]) -> None:
                with database.write() as conn:
                    grants = leases.acquire(conn, me.id, partitions)
                    held.update({g.partition: g.epoch for g in grants})
                with database.write() as conn:
                    leases.release(conn, me.id, {p: held[p] for p in partitions})

            print(
                f"acquire + release 1 partition:    {timed(lambda: cycle([5]), args.runs)} (two commits)"
            )
            print(
                f"acquire + release {PARTITIONS} partitions:  {timed(lambda: cycle(every), args.runs)} (two commits)"
            )
            with database.write() as conn:
                held = {g.partition: g.epoch for g in leases.acquire(conn, me.id, every)}

            def renew() -> None:
                with database.write() as conn:
                    assert len(leases.renew(conn, me.id, held)) == PARTITIONS

            print(f"renew {PARTITIONS} partitions:              {timed(renew, args.runs)}")
            seq = iter(range(1, 10**9))

            def commit(partitions: int, fenced: bool) -> None:
                with database.write() as conn:
                    if fenced:
                        n = next(seq)
                        fencing.fence(
                            conn,
                            me.id,
                            [
                                fencing.Checkpoint(
                                    p, held[p], raw_seq=n, clock={"clock": n, "updated": n}
                                )
                                for p in range(partitions)
                            ],
                        )
                    else:
                        conn.execute(sa.select(1))

            print(f"commit without a fence:           {timed(lambda: commit(0, False), args.runs)}")
            print(f"commit fencing 1 partition:       {timed(lambda: commit(1, True), args.runs)}")
            print(f"commit fencing 8 partitions:      {timed(lambda: commit(8, True), args.runs)}")
            others = [
                membership.join(database, grpc_addr="127.0.0.1:2", member_id=f"peer-{i}")
                for i in range(2)
            ]
            print(f"probe 3 members:                  {timed(me.probe, args.runs)}")
            for other in others:
                other.leave()
        finally:
            me.leave()
            database.dispose()


if __name__ == "__main__":
    main()
