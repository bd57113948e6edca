"""A cluster of real replica processes, an oracle, and what a test checks after quiescence.

:class:`Cluster` starts ``automations serve --cluster`` processes (``EngineProcess``) on one
PostgreSQL database and one NATS server, with a stream prefix of its own and short leases (2 s,
renewed every 0.5 s, peers probed every 0.1 s) so that failovers fit in a test. It publishes like a
load generator that retries an unacknowledged request on another replica with the same event ids,
and remembers what was acknowledged. :meth:`Cluster.wait_quiescent` waits until every partition is
owned by a live replica that has read and committed everything its log holds and the relay's
outbox is empty; then the event log, the firings and the metrics can be compared with an
:class:`Oracle`: a single-node engine (SQLite) given the same automations and the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nats
import orjson
import sqlalchemy as sa

from automations import client as client_
from automations.cluster import log, log_streams
from automations.store import tables
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

PARTITIONS = 8
TIMING = {
    "AUTOMATIONS_CLUSTER_LEASE_SECONDS": "2",
    "AUTOMATIONS_CLUSTER_RENEW_SECONDS": "0.5",
    "AUTOMATIONS_CLUSTER_PROBE_SECONDS": "0.1",
}
Firing = tuple[str, str | None, str]
"""What is compared of a firing: automation id, triggering event id, triggering labels (JSON)."""


class Cluster:
    """Replica processes of one cluster (see the module docstring).

    Args:
        workdir: Where each replica gets a directory (its log file).
        database_url: An empty PostgreSQL database.
        nats_url: A NATS server with JetStream.
        partitions: The cluster's partition count.
    """

    def __init__(
        self, workdir: Path, database_url: str, nats_url: str, *, partitions: int = PARTITIONS
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.nats_url = nats_url
        self.partitions = partitions
        self.prefix = f"T{uuid.uuid4().hex[:12]}"
        self.replicas: list[EngineProcess] = []
        self.replica_args: tuple[str, ...] = ()
        """More arguments of ``serve`` for replicas started from now on (executor routes)."""
        self.webhooks = False
        """Whether replicas started from now on serve ``/hooks`` on their ``http_addr``: only
        the webhook tests need their front processes (five replicas joining at once with one
        each is five more process start-ups on a small machine)."""
        self.acked: list[str] = []
        """Ids of the events acknowledged (ACCEPTED or DUPLICATE), in order."""
        self._next = itertools.count()
        self._engine = sa.create_engine(
            database_url.replace("postgresql://", "postgresql+psycopg://", 1),
            poolclass=sa.pool.NullPool,
        )

    # ------------------------------------------------------------------ processes

    def start_replica(self, env: Mapping[str, str] | None = None) -> EngineProcess:
        """Starts one more replica (``env``: more environment) and waits until it serves."""
        replica = self.add_replica(env)
        replica.start(timeout=60)
        return replica

    def add_replica(self, env: Mapping[str, str] | None = None) -> EngineProcess:
        """One more replica, not started yet (``env``: more environment)."""
        number = len(self.replicas)
        directory = self.workdir / f"replica-{number}"
        directory.mkdir()
        replica = EngineProcess(
            directory,
            database_url=self.database_url,
            extra_args=(
                "--cluster",
                "--nats-url",
                self.nats_url,
                *(() if self.webhooks else ("--http-addr", "")),
                *self.replica_args,
            ),
            env={
                **TIMING,
                "AUTOMATIONS_CLUSTER_PARTITIONS": str(self.partitions),
                "AUTOMATIONS_CLUSTER_STREAM_PREFIX": self.prefix,
                **(env or {}),
            },
        )
        self.replicas.append(replica)
        return replica

    def live(self) -> list[EngineProcess]:
        """The replicas whose process runs (a stopped one counts: it is not dead)."""
        return [r for r in self.replicas if r.proc is not None and r.proc.poll() is None]

    def close(self) -> None:
        """Stops every replica and deletes the streams."""
        for replica in self.replicas:
            replica.stop()
        with contextlib.suppress(Exception):
            asyncio.run(self._delete_streams())
        self._engine.dispose()

    async def _delete_streams(self) -> None:
        opened = await log.JetStreamLog.connect(self.nats_url, self._log_settings())
        try:
            await opened.delete_streams()
        finally:
            await opened.close()

    def _log_settings(self) -> log_streams.LogSettings:
        return log_streams.LogSettings(prefix=self.prefix)

    # ------------------------------------------------------------------ the API

    def client(self, replica: EngineProcess) -> client_.Client:
        """A client of one replica that gives up at once (the caller retries elsewhere)."""
        return client_.Client(replica.grpc_addr, timeout=10.0, max_attempts=1)

    def create_automation(self, spec: Mapping[str, Any], automation_id: str) -> None:
        """Creates an automation through the first live replica."""
        with self.client(self.live()[0]) as api:
            api.create_automation(spec, automation_id=automation_id)

    def publish(self, events: Sequence[Mapping[str, Any]], *, attempts: int = 20) -> None:
        """Publishes a batch, retrying an unacknowledged one on the next live replica.

        Raises:
            AssertionError: No replica acknowledged the batch.
        """
        last: Exception | None = None
        for _ in range(attempts):
            live = self.live()
            if not live:
                break
            replica = live[next(self._next) % len(live)]
            try:
                with self.client(replica) as api:
                    results = api.publish(events)
            except client_.CallError as exc:
                last = exc
                continue
            assert all(r.ok for r in results), [str(r) for r in results if not r.ok]
            self.acked.extend(r.event_id for r in results)
            return
        raise AssertionError(f"no replica acknowledged the batch: {last}")

    # ------------------------------------------------------------------ the database

    def owner_of(self, partition: int) -> EngineProcess | None:
        """The replica owning ``partition`` now (by its gRPC address), or None."""
        p, m = tables.partitions, tables.cluster_members
        with self._engine.connect() as conn:
            addr = conn.execute(
                sa.select(m.c.grpc_addr)
                .join(p, p.c.owner == m.c.id)
                .where(p.c.partition == partition)
            ).scalar()
        return next((r for r in self.replicas if r.grpc_addr == addr), None)

    def owners(self) -> dict[int, str | None]:
        """``{partition: owner member id}``."""
        p = tables.partitions
        with self._engine.connect() as conn:
            return {int(r[0]): r[1] for r in conn.execute(sa.select(p.c.partition, p.c.owner))}

    def owner_count(self) -> int:
        """How many replicas own partitions now."""
        return len({owner for owner in self.owners().values() if owner})

    def wait_owners(self, count: int, timeout: float = 20.0) -> None:
        """Waits until ``count`` replicas own partitions."""
        wait_until(
            lambda: self.owner_count() == count, timeout=timeout, what=f"{count} owning replicas"
        )

    def stable_owners(self, replicas: int, timeout: float = 30.0) -> dict[int, str | None]:
        """``{partition: owner}`` once ``replicas`` own every partition, the same twice in a row."""
        seen: list[dict[int, str | None]] = []

        def settled() -> bool:
            owners = self.owners()
            seen.append(owners)
            return (
                all(owners.values())
                and len(set(owners.values())) == replicas
                and len(seen) > 1
                and seen[-2] == owners
            )

        wait_until(settled, timeout=timeout, interval=0.5, what=f"{replicas} replicas owning all")
        return seen[-1]

    def offsets(self) -> dict[str, dict[int, int]]:
        """The committed ``raw`` and ``fwd`` offsets of every partition."""
        p = tables.partitions
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(p.c.partition, p.c.raw_seq, p.c.fwd_seq)).all()
        return {"raw": {r[0]: r[1] for r in rows}, "fwd": {r[0]: r[2] for r in rows}}

    def firings(self) -> list[Firing]:
        """Every stored firing, sorted, as compared with the oracle's."""
        f = tables.firings
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(f.c.automation_id, f.c.triggering_event_id, f.c.labels)
            ).all()
        return sorted(
            (row[0], row[1], json.dumps(orjson.loads(row[2]), sort_keys=True)) for row in rows
        )

    def invocations(self) -> list[tuple[str, str, str]]:
        """``(automation id, idempotency key, status)`` of every action invocation."""
        i = tables.action_invocations
        with self._engine.connect() as conn:
            return [
                (r[0], r[1], r[2])
                for r in conn.execute(sa.select(i.c.automation_id, i.c.idempotency_key, i.c.status))
            ]

    def logged(self) -> list[str]:
        """The ids in the event log (each once: they are its primary key)."""
        with self._engine.connect() as conn:
            return list(conn.execute(sa.select(tables.events.c.id)).scalars())

    def partition_history(self) -> list[tuple[int, int, str, str | None]]:
        """``(partition, epoch, owner, previous owner)`` of every acquisition."""
        h = tables.partition_history
        with self._engine.connect() as conn:
            return [
                (int(r[0]), int(r[1]), r[2], r[3])
                for r in conn.execute(
                    sa.select(h.c.partition, h.c.epoch, h.c.owner, h.c.previous_owner)
                )
            ]

    def wait_quiescent(self, timeout: float = 40.0) -> None:
        """Waits until everything in the log is committed by live owners and relayed, twice."""
        wait_until(
            lambda: self._quiet() and self._quiet(),
            timeout=timeout,
            interval=0.2,
            what="quiescence",
        )

    def _quiet(self) -> bool:
        raw, fwd = asyncio.run(self._last_sequences())
        live = {r.grpc_addr for r in self.live()}
        p, m = tables.partitions, tables.cluster_members
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(p.c.partition, p.c.raw_seq, p.c.fwd_seq, m.c.grpc_addr).outerjoin(
                    m, p.c.owner == m.c.id
                )
            ).all()
            outbox = conn.execute(
                sa.select(sa.func.count()).select_from(tables.cluster_outbox)
            ).scalar_one()
        return outbox == 0 and all(
            row[3] in live and row[1] >= raw[row[0]] and row[2] >= fwd[row[0]] for row in rows
        )

    def stored_messages(self) -> int:
        """How many messages the cluster's two streams hold now."""
        return asyncio.run(self._stored_messages())

    async def _stored_messages(self) -> int:
        client = await nats.connect(self.nats_url)
        try:
            jsm = client.jsm()
            settings = self._log_settings()
            total = 0
            for stage in (log_streams.Stage.RAW, log_streams.Stage.FWD):
                total += (await jsm.stream_info(settings.stream(stage))).state.messages
            return total
        finally:
            await client.close()

    async def _last_sequences(self) -> tuple[dict[int, int], dict[int, int]]:
        opened = await log.JetStreamLog.connect(self.nats_url, self._log_settings())
        try:
            every = range(self.partitions)
            return (
                await opened.last_sequences(log_streams.Stage.RAW, every),
                await opened.last_sequences(log_streams.Stage.FWD, every),
            )
        finally:
            await opened.close()


def metric(replica: EngineProcess, name: str) -> float:
    """The sum of a replica's samples named ``name`` (0 when it has none)."""
    with urllib.request.urlopen(f"http://{replica.metrics_addr}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Oracle:
    """A single-node engine (SQLite) fed the same automations and events as the cluster."""

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        directory = workdir / "oracle"
        directory.mkdir()
        self.engine = EngineProcess(directory, env=dict(env or {}))

    def __enter__(self) -> Oracle:
        self.engine.start(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.stop()

    def create_automation(self, spec: Mapping[str, Any], automation_id: str) -> None:
        with client_.Client(self.engine.grpc_addr) as api:
            api.create_automation(spec, automation_id=automation_id)

    def publish(self, events: Iterable[Mapping[str, Any]]) -> None:
        with client_.Client(self.engine.grpc_addr) as api:
            api.publish(list(events), raise_on_rejected=True)

    def invocations(self) -> list[tuple[str, str, str]]:
        """``(automation id, idempotency key, status)`` of every action invocation."""
        with client_.Client(self.engine.grpc_addr) as api:
            found = api.list_invocations()
        return [(i["automation_id"], i["id"], i["status"]) for i in found]

    def firings(self) -> list[Firing]:
        with client_.Client(self.engine.grpc_addr) as api:
            found = api.list_firings()
        return sorted(
            (
                f["automation_id"],
                f["triggering_event_id"],
                json.dumps(f["triggering_labels"], sort_keys=True),
            )
            for f in found
        )
