"""The processes ``bench.cluster`` measures: replicas, single-node engines, and what it watches.

- :class:`Node` is one ``automations serve`` process: a cluster replica (``--cluster`` on a
  PostgreSQL database, the machine's NATS) or a single-node engine (SQLite or PostgreSQL), with
  its CPU counted over the process and its children (the rete worker).
- :class:`BenchCluster` is a cluster on a throw-away database with a stream prefix of its own:
  replicas started and killed, who owns what, and when everything in the log is committed.
- :class:`FiringWatcher` records when each firing became visible in a database (wall clock): a
  bench-only trigger on the firings table notifies its listener as the firing's transaction
  commits. The latency a reader of the database sees, measured the same way in both modes (a
  firing's own time is engine time, which in cluster mode is the ingest's receive time of its
  event, so that replays agree).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psycopg
import sqlalchemy as sa

from automations.cluster import log, log_streams, routing
from automations.executors.supervisor import free_port
from automations.store import tables
from bench import cluster_leases, harness

T = TypeVar("T")
NATS_URL = os.environ.get("AUTOMATIONS_NATS_URL", "nats://127.0.0.1:4222")
scratch_database = cluster_leases.scratch_database


def wait(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Polls ``condition`` until true; raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants so far."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        one = todo.pop()
        total += cpu.get(one, 0.0)
        todo.extend(children.get(one, []))
    return total


def resource_in(partition: int, tag: str, partitions: int) -> str:
    """A resource id whose events go to ``partition`` (of ``partitions``)."""
    for n in range(1_000_000):
        resource = f"bench.{tag}.{n}"
        if routing.raw_partition(resource, partitions) == partition:
            return resource
    raise AssertionError(partition)


def loaded(node: Node) -> float:
    """How many automations ``node`` has loaded (its metrics endpoint)."""
    with urllib.request.urlopen(f"http://{node.metrics_addr}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("automations_loaded_automations "):
                return float(line.split()[1])
    return 0.0


class Node:
    """One ``automations serve`` process (see the module docstring)."""

    def __init__(
        self, workdir: Path, database_url: str, args: tuple[str, ...], env: dict[str, str]
    ) -> None:
        self.workdir = workdir
        self.addr = f"127.0.0.1:{free_port()}"
        self.metrics_addr = f"127.0.0.1:{free_port()}"
        self.log_path = workdir / "engine.log"
        workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "automations.cli.main",
                    "serve",
                    "--grpc-addr",
                    self.addr,
                    "--metrics-addr",
                    self.metrics_addr,
                    "--http-addr",
                    f"127.0.0.1:{free_port()}",
                    "--database-url",
                    database_url,
                    "--no-executors",
                    *args,
                ],
                stdout=out,
                stderr=out,
                env={**harness._env(), **env},
                cwd=workdir,
            )
        harness.wait_serving(self.addr, self.proc, self.log_path)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu(self) -> float:
        """CPU seconds of the process and its children so far."""
        return tree_cpu_seconds(self.proc.pid)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def single_node(database: str) -> Iterator[tuple[Node, str]]:
    """A single-node engine on ``database`` ("sqlite" or "postgresql"): (node, its database URL)."""
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="automations-bench-")))
        if database == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            url = stack.enter_context(scratch_database(None))
        node = Node(tmp / "engine", url, (), {})
        try:
            yield node, url
        finally:
            node.stop()


class BenchCluster:
    """Replicas of one cluster on a throw-away database (use as a context manager)."""

    def __init__(self, partitions: int = 32, env: dict[str, str] | None = None) -> None:
        self.partitions = partitions
        self.prefix = f"B{uuid.uuid4().hex[:12]}"
        self.env = env or {}
        self.replicas: list[Node] = []
        self._stack = contextlib.ExitStack()
        self.database_url = ""
        self.engine: sa.Engine | None = None
        self._tmp = Path(".")

    def __enter__(self) -> BenchCluster:
        self._tmp = Path(
            self._stack.enter_context(tempfile.TemporaryDirectory(prefix="automations-bench-"))
        )
        self.database_url = self._stack.enter_context(scratch_database(None))
        self.engine = sa.create_engine(
            self.database_url.replace("postgresql://", "postgresql+psycopg://", 1),
            poolclass=sa.pool.NullPool,
        )
        self._stack.callback(self.engine.dispose)
        return self

    def __exit__(self, *exc: object) -> None:
        for replica in self.replicas:
            replica.stop()
        with contextlib.suppress(Exception):
            asyncio.run(self._with_log(lambda opened: opened.delete_streams()))
        self._stack.close()

    def start_replica(self) -> Node:
        node = Node(
            self._tmp / f"replica-{len(self.replicas)}",
            self.database_url,
            ("--cluster", "--nats-url", NATS_URL),
            {
                "AUTOMATIONS_CLUSTER_PARTITIONS": str(self.partitions),
                "AUTOMATIONS_CLUSTER_STREAM_PREFIX": self.prefix,
                **self.env,
            },
        )
        self.replicas.append(node)
        return node

    def live(self) -> list[Node]:
        return [r for r in self.replicas if r.alive]

    def member_of(self, node: Node) -> str | None:
        """The member id of a replica (by its gRPC address)."""
        m = tables.cluster_members
        assert self.engine is not None
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(m.c.id).where(m.c.grpc_addr == node.addr)).scalar()
        return None if found is None else str(found)

    def partitions_rows(self) -> dict[int, tuple[str | None, int, int]]:
        """``{partition: (owner, raw_seq, fwd_seq)}``."""
        p = tables.partitions
        assert self.engine is not None
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(p.c.partition, p.c.owner, p.c.raw_seq, p.c.fwd_seq))
            return {int(r[0]): (r[1], int(r[2]), int(r[3])) for r in rows}

    def settled(self) -> bool:
        """Every partition owned, by as many owners as live replicas."""
        owners = [row[0] for row in self.partitions_rows().values()]
        return None not in owners and len(set(owners)) == len(self.live())

    def quiescent(self) -> bool:
        """Everything in the log committed by its owner, and the outbox empty."""
        raw, fwd = asyncio.run(self._with_log(self._last_sequences))
        rows = self.partitions_rows()
        p_out = tables.cluster_outbox
        assert self.engine is not None
        with self.engine.connect() as conn:
            outbox = conn.execute(sa.select(sa.func.count()).select_from(p_out)).scalar_one()
        return outbox == 0 and all(
            row[0] is not None and row[1] >= raw[p] and row[2] >= fwd[p] for p, row in rows.items()
        )

    async def _last_sequences(
        self, opened: log.JetStreamLog
    ) -> tuple[dict[int, int], dict[int, int]]:
        every = range(self.partitions)
        return (
            await opened.last_sequences(log_streams.Stage.RAW, every),
            await opened.last_sequences(log_streams.Stage.FWD, every),
        )

    async def _with_log(self, action: Callable[[log.JetStreamLog], Awaitable[T]]) -> T:
        opened = await log.JetStreamLog.connect(NATS_URL, log_streams.LogSettings(self.prefix))
        try:
            return await action(opened)
        finally:
            await opened.close()


_NOTIFY_CHANNEL = "bench_firings"
_NOTIFY_SETUP = f"""
CREATE OR REPLACE FUNCTION bench_notify_firing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{_NOTIFY_CHANNEL}', COALESCE(NEW.triggering_event_id::text, ''));
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS bench_notify_firing ON firings;
CREATE TRIGGER bench_notify_firing AFTER INSERT ON firings
    FOR EACH ROW EXECUTE FUNCTION bench_notify_firing();
"""


class FiringWatcher:
    """Records when each firing (by triggering event id) became visible in a database.

    A bench-only row trigger on the firings table sends a notification with the triggering
    event's id; PostgreSQL delivers it when the inserting transaction commits, and a listening
    thread timestamps it on arrival (wall clock). So the time recorded is the firing's commit
    as any reader sees it, with no polling interval in it and no query re-reading the table
    (polling every 5 ms cost the machine more than the engine under measurement). The same
    trigger and listener measure single-node PostgreSQL and the cluster.
    """

    def __init__(self, database_url: str) -> None:
        self._conninfo = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FiringWatcher:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute("DROP TRIGGER IF EXISTS bench_notify_firing ON firings")

    def _run(self) -> None:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True)
            conn.execute(_NOTIFY_SETUP)
            conn.execute(f"LISTEN {_NOTIFY_CHANNEL}")
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        with conn:
            while not self._stop.is_set():
                for note in conn.notifies(timeout=0.2):
                    now = time.time()
                    if note.payload and note.payload not in self.seen:
                        self.seen[note.payload] = now
                    if self._stop.is_set():
                        break
