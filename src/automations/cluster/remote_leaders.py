"""Followers whose leader another replica processes: released once the shared event log has it.

An event that ``follows`` a leader not processed yet is held until the leader is processed, or
until it is lost (``engine.ordering``). In cluster mode the leader may be a raw event of a
partition another replica owns. Every replica reads the same event log, and a raw event's owner
appends it to the log in the very transaction in which it evaluates it (``replica_backend``), so
a committed event log row is a leader that was processed. A leader is *ready* (its followers may
be processed, after it) once:

1. its row is committed in the event log, it is not a ``prefect.log.write`` event (logged, never
   processed), and its raw partition does not hold it as a follower itself (a held follower is
   logged when it arrives: its ``follower`` record in ``partition_state`` is written with its log
   row and deleted by the commit that processes it), and
2. what its owner's commit wrote for the relay (the leader forwarded to the partitions holding
   its KEYED and WHOLE touches) is published: the relay of the leader's raw partition has
   published every outbox row up to the highest one there was when (1) was first seen. A
   follower's own forwards, written by a later commit, then come after the leader's in every
   destination's forward log, so a third partition evaluating both sees them in order too.

The replica looks leaders up (a) in the commit that takes a follower up, so that a follower of a
leader committed earlier (the usual order, and every ``action.triggered`` lifecycle event) is
processed at once, and (b) every :data:`POLL_INTERVAL` while held followers wait for leaders
that no owned partition has seen, so that a follower published before its leader is processed
right after the leader's commit and relay, not when it is lost.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from automations.cluster import partition_store, routing
from automations.engine import ordering
from automations.store import event_log

POLL_INTERVAL = 0.2
"""Seconds between two look-ups of the leaders held followers wait for (while there are any)."""


class RemoteLeaders:
    """Which leaders processed by other replicas are ready (see the module docstring).

    Remembers, for each leader found committed whose relay had not caught up yet, its raw
    partition and the highest outbox row id of that partition at the time: the relay must have
    published through that row.

    Args:
        partitions: ``Q``, the cluster's partition count.
    """

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._marks: dict[str, tuple[int, int | None]] = {}

    def ready(self, conn: Any, leaders: Collection[str]) -> set[str]:
        """Those of ``leaders`` committed by their owner, with their commit's messages relayed.

        Args:
            conn: A connection to the cluster's database.
            leaders: Ids of leaders no owned partition has processed.
        """
        unknown = [leader for leader in leaders if leader not in self._marks]
        committed: dict[str, int] = {}
        if unknown:
            logged: dict[int, list[str]] = {}
            for event_id, event in event_log.get_many(conn, unknown).items():
                if event.event != ordering.LOG_WRITE:
                    partition = routing.event_partition(event, self.partitions)
                    logged.setdefault(partition, []).append(event_id)
            for partition, found in logged.items():
                held = partition_store.held_followers(conn, partition, found)
                committed.update((x, partition) for x in found if x not in held)
        partitions = set(committed.values())
        partitions.update(self._marks[x][0] for x in leaders if x in self._marks)
        spans = partition_store.pending_spans(conn, partitions) if partitions else {}
        return self.update(leaders, committed, spans)

    def update(
        self,
        leaders: Iterable[str],
        committed: Mapping[str, int],
        spans: Mapping[int, tuple[int, int]],
    ) -> set[str]:
        """The ready ones of ``leaders``, from what the database says now.

        Args:
            leaders: The leaders asked about.
            committed: Leaders newly found in the event log, with their raw partitions.
            spans: ``partition -> (lowest, highest id)`` of the outbox rows not relayed yet, for
                the partitions of the leaders found committed (absent: none waiting).

        Returns:
            The leaders ready, forgotten here from now on (their followers are released).
        """
        for event_id, partition in committed.items():
            span = spans.get(partition)
            self._marks[event_id] = (partition, None if span is None else span[1])
        ready: set[str] = set()
        for leader in leaders:
            mark = self._marks.get(leader)
            if mark is None:
                continue
            partition, through = mark
            span = spans.get(partition)
            if through is None or span is None or span[0] > through:
                ready.add(leader)
                del self._marks[leader]
        return ready

    def keep_only(self, leaders: Collection[str]) -> None:
        """Forgets the leaders no follower waits for any more (lost, or released otherwise)."""
        for gone in [x for x in self._marks if x not in leaders]:
            del self._marks[gone]
