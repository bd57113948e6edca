"""A replica's ownership loop: membership, leases, rebalancing, and a reader pair per partition.

Runs on the event loop; everything that touches partition memory or partition rows is a call on
the replica's writer thread (``replica_backend``). Three periodic tasks:

* **probe** (every ``probe_every``, 0.2 s): who lives (``membership.probe``: a dead member's
  advisory lock is free; its row is pruned) and who is *fresh* (its heartbeat is less than a lease
  old: a replica stopped longer than its lease is left out, so its partitions move when their
  leases end, and its next commit is refused by the fence). From the fresh members, the desired
  owner of every partition (``assignment.assign``, rendezvous hashing with bounded loads); then
  release the owned partitions another member should own (gracefully: the commit in flight ends
  first, the writer runs calls in order) and acquire the free ones this replica should own;
* **renew** (every ``renew_every``, 1 s): a heartbeat on the membership's lock session, then the
  leases (the partitions taken over meanwhile are dropped), then the log purged of what the owned
  partitions committed since the last time (the streams' ``max_age`` bounds the rest);
* **sync** (every second): the automations other replicas changed (``cluster_changes``).

An owned partition has two readers (``log_reader``), of the raw stream from its committed raw
offset + 1 and of the forward stream from its forward offset + 1, each pumped into commits of
what is buffered (up to ``MAX_ENTRIES`` entries per commit). ``stop`` hands every partition over:
the pumps stop, the relay flushes, the leases are released, and the member leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable

from automations import metrics
from automations.cluster import (
    assignment,
    leases,
    log,
    log_errors,
    log_reader,
    log_streams,
    membership,
    relay,
    replica_backend,
)
from automations.domain import errors
from automations.pipeline import writer as writer_

logger = logging.getLogger(__name__)

MAX_ENTRIES = 64
"""Log entries (each up to 500 events) taken into one commit at most."""
SYNC_SECONDS = 1.0
"""How often automations changed by other replicas are looked for."""


@dataclasses.dataclass(slots=True)
class _Run:
    """An owned partition's readers and their pumps."""

    partition: int
    readers: list[log_reader.PartitionReader]
    tasks: list[asyncio.Task[None]]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for reader in self.readers:
            with contextlib.suppress(Exception):
                await reader.close()


class Replica:
    """One replica's partitions over time (see the module docstring).

    Args:
        member: This replica's membership (joined).
        writer: The replica's writer (its backend a ``ClusterBackend``, started).
        backend: That backend.
        raw_log: The log connection raw readers use.
        fwd_log: The log connection forward readers use.
        relayer: The replica's relay.
        timing: Lease length, renewal and probe periods.
        rejoin: Joins again after the lock session was lost (returns the new membership).
    """

    def __init__(
        self,
        member: membership.Membership,
        writer: writer_.Writer[replica_backend.ClusterBackend],
        backend: replica_backend.ClusterBackend,
        raw_log: log.JetStreamLog,
        fwd_log: log.JetStreamLog,
        relayer: relay.Relay,
        timing: leases.LeaseTiming,
        rejoin: Callable[[], Awaitable[membership.Membership]],
    ) -> None:
        self.member = member
        self._writer = writer
        self._backend = backend
        self._raw_log = raw_log
        self._fwd_log = fwd_log
        self._relay = relayer
        self._timing = timing
        self._rejoin = rejoin
        self._partition_count = backend.engine.router.partitions
        self._runs: dict[int, _Run] = {}
        self._lag: dict[tuple[int, str], int] = {}
        self._purged: dict[int, tuple[int, int]] = {}
        """The offsets each partition's log was last purged through."""
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    @property
    def id(self) -> str:
        """This replica's member id."""
        return self.member.id

    def start(self) -> None:
        """Starts the probe, renewal, sync and relay tasks."""
        self._loop = asyncio.get_running_loop()
        loop = self._loop

        def dropped(partitions: list[int]) -> None:  # on the writer thread
            loop.call_soon_threadsafe(self._dropped, partitions)

        self._backend.on_dropped = dropped
        self._backend.on_written = lambda written: self._relay.wake()
        self._tasks = [
            asyncio.create_task(
                self._every(self._timing.probe_every, self._rebalance), name="probe"
            ),
            asyncio.create_task(self._every(self._timing.renew_every, self._renew), name="renew"),
            asyncio.create_task(self._every(SYNC_SECONDS, self._sync), name="sync"),
            asyncio.create_task(self._relay.run(), name="relay"),
        ]

    async def stop(self, before_release: Callable[[], Awaitable[None]] | None = None) -> None:
        """Hands every partition over and leaves the cluster.

        Args:
            before_release: Awaited once the pumps stopped and before the leases are released
                (the composition stops the dispatcher there, so its outcomes are recorded).
        """
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            for task in run.tasks:
                task.cancel()
        with contextlib.suppress(Exception):
            await self._relay.flush()
        if before_release is not None:
            await before_release()
        with contextlib.suppress(Exception):
            await self._relay.flush()
        try:
            released = await self._writer.call(lambda backend: backend.release(list(backend.owned)))
            logger.info("released every partition", extra={"partitions": released})
        except Exception:
            logger.exception("releasing the partitions failed; their leases end by themselves")
        for run in runs:
            await run.close()
        await asyncio.to_thread(self.member.leave)

    # ------------------------------------------------------------------ periodic work

    async def _every(self, seconds: float, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except errors.Unavailable as exc:
                logger.warning("%s: %s", work.__name__.strip("_"), exc)
            except Exception:
                logger.exception("%s failed", work.__name__.strip("_"))
            await asyncio.sleep(seconds)

    async def _rebalance(self) -> None:
        probe = await asyncio.to_thread(self.member.probe)
        if probe.dead:
            await asyncio.to_thread(self.member.prune, probe.dead)
        desired = desired_owners(probe, self.id, self._timing.lease, self._partition_count)
        owned = set(self._backend.owned_partitions)
        give = sorted(p for p in owned if desired.get(p) != self.id)
        if give:
            await self._release(give)
        take = sorted(p for p, owner in desired.items() if owner == self.id and p not in owned)
        if take and not self._stopping:
            dead = sorted(probe.dead_ids)
            lease = self._timing.lease
            grants = await self._writer.call(lambda backend: backend.acquire(take, dead, lease))
            # their readers opened together: each open waits for JetStream to create 2 consumers
            await asyncio.gather(*(self._open(grant) for grant in grants))
        metrics.CLUSTER_LOG_LAG.set(sum(self._lag.values()))

    async def _renew(self) -> None:
        try:
            await asyncio.to_thread(self.member.heartbeat)
        except membership.MembershipLost as exc:
            logger.error("membership lost: dropping every partition and joining again: %s", exc)
            await self._writer.call(lambda backend: backend.release(list(backend.owned)))
            for run in list(self._runs.values()):
                await self._close(run.partition)
            await asyncio.to_thread(self.member.leave)
            self.member = await self._rejoin()
            return
        lease = self._timing.lease
        await self._writer.call(lambda backend: backend.renew(lease))
        await self._purge()

    async def _purge(self) -> None:
        """Deletes what the owned partitions committed from the log (nobody reads it again).

        A new owner reads from the committed offsets + 1, so messages up to them are never read
        again, whoever owns the partition next; a replica that lost a partition meanwhile purges
        at most up to an offset its successor has passed.
        """
        committed = await self._writer.call(
            lambda backend: {p: (o.raw_seq, o.fwd_seq) for p, o in backend.owned.items()}
        )
        for partition, (raw_seq, fwd_seq) in committed.items():
            done = self._purged.get(partition, (0, 0))
            try:
                if raw_seq > done[0]:
                    await self._raw_log.purge(log_streams.Stage.RAW, partition, raw_seq)
                if fwd_seq > done[1]:
                    await self._fwd_log.purge(log_streams.Stage.FWD, partition, fwd_seq)
            except log_errors.LogUnavailable as exc:
                logger.warning("purging partition %d failed; later: %s", partition, exc)
                return
            self._purged[partition] = (raw_seq, fwd_seq)

    async def _sync(self) -> None:
        await self._writer.call(lambda backend: backend.changes.sync())

    # ------------------------------------------------------------------ partitions

    async def _open(self, grant: leases.Grant) -> None:
        """Starts reading a partition just acquired, from its committed offsets."""
        partition = grant.partition
        readers: list[log_reader.PartitionReader] = []
        try:
            readers.append(
                await self._raw_log.open_reader(log_streams.Stage.RAW, partition, grant.raw_seq + 1)
            )
            readers.append(
                await self._fwd_log.open_reader(log_streams.Stage.FWD, partition, grant.fwd_seq + 1)
            )
        except log_errors.LogUnavailable as exc:
            logger.warning("cannot read partition %d; handing it back: %s", partition, exc)
            for reader in readers:
                await reader.close()
            await self._writer.call(lambda backend: backend.release([partition]))
            return
        raw, fwd = readers
        self._runs[partition] = _Run(
            partition,
            readers,
            [
                asyncio.create_task(self._pump(partition, raw, fwd=False), name=f"raw-{partition}"),
                asyncio.create_task(self._pump(partition, fwd, fwd=True), name=f"fwd-{partition}"),
            ],
        )
        self._relay.wake()  # the previous owner may have left rows unrelayed

    async def _release(self, partitions: list[int]) -> None:
        """Hands ``partitions`` over at once, after the commits already queued.

        Their pumps stop, then one relay flush and one writer call release them all (a release
        per partition made the last one wait for every earlier one's flush and writer turn).
        """
        runs = [run for p in partitions if (run := self._runs.pop(p, None)) is not None]
        for run in runs:
            for task in run.tasks:
                task.cancel()
        await self._relay.flush()
        await self._writer.call(lambda backend: backend.release(partitions))
        for run in runs:
            await run.close()

    def _dropped(self, partitions: list[int]) -> None:
        """The backend dropped partitions (a failed commit or renewal): stop reading them."""
        for partition in partitions:
            asyncio.ensure_future(self._close(partition))

    async def _close(self, partition: int) -> None:
        run = self._runs.pop(partition, None)
        if run is not None:
            await run.close()
        self._lag.pop((partition, "raw"), None)
        self._lag.pop((partition, "fwd"), None)

    async def _pump(self, partition: int, reader: log_reader.PartitionReader, *, fwd: bool) -> None:
        """Commits what the reader brings, a buffered batch of entries at a time."""
        stage = "fwd" if fwd else "raw"
        while True:
            try:
                entry = await reader.next()
            except StopAsyncIteration:
                return
            if entry is None:
                continue
            entries = [entry]
            while len(entries) < MAX_ENTRIES:
                more = await reader.next(timeout=0)
                if more is None:
                    break
                entries.append(more)
            self._lag[(partition, stage)] = entries[-1].pending
            if not await self._writer.call(functools.partial(_commit, partition, entries, fwd)):
                return


def _commit(
    partition: int,
    entries: list[log_reader.LogEntry],
    fwd: bool,
    backend: replica_backend.ClusterBackend,
) -> bool:
    if fwd:
        return backend.commit_fwd(partition, entries)
    return backend.commit_raw(partition, entries)


def desired_owners(
    probe: membership.Probe, me: str, lease: float, partition_count: int
) -> dict[int, str]:
    """Who should own each partition in the view of member ``me``.

    The members counted are the live ones whose last heartbeat is less than ``lease`` older than
    the newest one (a replica stopped longer than its lease is left out), and ``me`` whatever its
    own heartbeat says: a replica running this is not stopped, and one whose heartbeat lagged
    (its renewal loop slowed by load) used to find itself stale and hand every partition over,
    only to take them back at its next heartbeat.
    """
    live = probe.live
    newest = max((member.heartbeat for member in live), default=0.0)
    fresh = {member.id for member in live if newest - member.heartbeat < lease}
    return assignment.assign(partition_count, fresh | {me})
