"""Causal ordering (``follows``), deduplication, event-clock updates: what to evaluate when.

A port of Prefect's triggers message handler plus ``ordering/memory.py`` (``CausalOrdering``):

* ``prefect.log.write`` events are ignored entirely; an id processed in the last 30 minutes is
  ignored (a redelivery);
* every event taken up updates the event clock, a held follower both when it arrives and when it
  is processed;
* an event that follows an id not processed yet is held, unless it follows itself or is old
  (``now - received >= 15 min``);
* once an event is processed, its held followers are processed right after it, in ``occurred``
  order, recursively; a chain deeper than 20 stops there (Prefect's ``MaxDepthExceeded``), the rest
  waiting to be lost;
* a held event whose leader never came is "lost" at ``received + 15 min`` and processed on its own
  (lost followers of one instant in ``occurred`` order).

The ordering decides only *which* events are evaluated and in which order; the trigger engine then
evaluates that list. Nothing here depends on trigger state.
"""

from __future__ import annotations

import collections
import heapq
from collections.abc import Callable, Collection, Iterable, Sequence

from automations.domain import events
from automations.engine.clock import EventClock, quantize

LOG_WRITE = "prefect.log.write"
"""Events with this name never reach triggers."""
PRECEDING_EVENT_LOOKBACK = 900.0
"""Seconds after receipt at which a held follower is lost, and the age processed without waiting."""
SEEN_EXPIRATION = 1800.0
"""Seconds a processed event id is remembered for deduplication and as a leader."""
MAX_DEPTH = 20
"""Prefect's ``MAX_DEPTH_OF_PRECEDING_EVENT``."""
MAX_SEEN = 1_000_000
"""Processed ids remembered at most (Prefect keeps 10,000); the oldest are forgotten first."""


def _occurred(event: events.Event) -> float:
    return event.occurred


def received_at(event: events.Event) -> float:
    """The event's receipt time (``received``, or ``occurred`` when unset)."""
    return event.received or event.occurred


class CausalOrdering:
    """Dedup, log-write filtering, the event clock and ``follows`` bookkeeping.

    Attributes:
        clock: The event clock (updated for every event taken up).
        held: Held followers by id.
    """

    def __init__(
        self,
        clock: EventClock,
        *,
        seen_ttl: float = SEEN_EXPIRATION,
        lookback: float = PRECEDING_EVENT_LOOKBACK,
        max_depth: int = MAX_DEPTH,
        max_seen: int = MAX_SEEN,
    ) -> None:
        self.clock = clock
        self.max_seen = max_seen
        self.seen_ttl = seen_ttl
        self.lookback = lookback
        self.max_depth = max_depth
        self._seen: dict[str, float] = {}
        # Expiry order: every id in one flat deque, and one (expiry, count) group per expiry
        # instant (a call's ids share one). A deque per group cost ~600 bytes per call, which
        # streams of one-event calls paid per remembered id (~600 MB at 1M ids); a (float, id)
        # tuple per id cost ~90 bytes.
        self._seen_ids: collections.deque[str] = collections.deque()
        self._group_expiry: collections.deque[float] = collections.deque()
        self._group_size: collections.deque[int] = collections.deque()
        self.held: dict[str, events.Event] = {}
        self.leader_seen: Callable[[str, float], bool] | None = None
        """Whether a leader this ordering does not remember was processed: elsewhere (a cluster's
        other partitions) or before a restart (the single node's event log); None: never. Not
        asked about an id of the batch being taken (stored already, maybe not processed yet)."""
        self._taking: Sequence[events.Event] = ()
        self._taking_ids: set[str] | None = None  # made on the first question (see _leader_known)
        self._followers: dict[str, list[str]] = {}
        self._lost: list[tuple[float, int, str]] = []
        self._lost_seq = 0
        # changes since the last drain, for persistence
        self.new_seen: list[str] = []
        self.held_changed: set[str] = set()
        self.clock_changed = False

    # ------------------------------------------------------------------ seen ids

    def has_been_seen(self, event_id: str, now: float) -> bool:
        """True when ``event_id`` was processed less than ``seen_ttl`` seconds before ``now``."""
        expires = self._seen.get(event_id)
        return expires is not None and now < expires

    def _queue_seen(self, event_id: str, expires: float) -> None:
        self._queue_group(expires, 1)
        self._seen_ids.append(event_id)
        self._seen[event_id] = expires

    def _queue_group(self, expires: float, count: int) -> None:
        expiry = self._group_expiry
        if expiry and expiry[-1] == expires:
            self._group_size[-1] += count
        else:
            expiry.append(expires)
            self._group_size.append(count)

    def _record_seen(self, event_id: str, now: float) -> None:
        self._queue_seen(event_id, now + self.seen_ttl)
        self.new_seen.append(event_id)
        if len(self._seen) > self.max_seen:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        ids, expiry, sizes = self._seen_ids, self._group_expiry, self._group_size
        seen = self._seen
        while ids and len(seen) > self.max_seen:
            expires = expiry[0]
            event_id = ids.popleft()
            sizes[0] -= 1
            if not sizes[0]:
                expiry.popleft()
                sizes.popleft()
            if seen.get(event_id) == expires:
                del seen[event_id]

    def expire_seen(self, now: float) -> None:
        """Forgets ids whose time has passed (memory bound)."""
        ids, expiry, sizes = self._seen_ids, self._group_expiry, self._group_size
        seen = self._seen
        while expiry and expiry[0] <= now:
            expires = expiry.popleft()
            for _ in range(sizes.popleft()):
                event_id = ids.popleft()
                if seen.get(event_id) == expires:
                    del seen[event_id]

    def restore_seen(self, ids: Iterable[str], expires: float) -> None:
        """Restores processed ids that expire at ``expires``."""
        for event_id in ids:
            if self._seen.get(event_id, 0.0) < expires:
                self._queue_seen(event_id, expires)

    def seen_items(self) -> list[tuple[str, float]]:
        """The remembered ids with their expiry times."""
        return list(self._seen.items())

    # ------------------------------------------------------------------ followers

    def _hold(self, event: events.Event) -> None:
        leader = event.follows
        assert leader is not None
        self.held[event.id] = event
        waiting = self._followers.setdefault(leader, [])
        if event.id not in waiting:
            waiting.append(event.id)
        self._lost_seq += 1
        heapq.heappush(
            self._lost,
            (quantize(received_at(event) + self.lookback), self._lost_seq, event.id),
        )
        self.held_changed.add(event.id)

    def _forget(self, event: events.Event) -> None:
        if self.held.pop(event.id, None) is not None:
            self.held_changed.add(event.id)
        leader = event.follows
        if leader is not None:
            waiting = self._followers.get(leader)
            if waiting is not None and event.id in waiting:
                waiting.remove(event.id)
                if not waiting:
                    del self._followers[leader]

    def lost_at(self, event: events.Event) -> float:
        """Wall time at which a held event becomes lost."""
        return quantize(received_at(event) + self.lookback)

    def restore_follower(self, event: events.Event) -> None:
        """Restores a held follower."""
        self._hold(event)
        self.held_changed.discard(event.id)

    # ------------------------------------------------------------------ taking events up

    def take(self, batch: Sequence[events.Event], now: float) -> list[events.Event]:
        """Takes up received events; returns those to evaluate now, in evaluation order."""
        # Inlined for the common event (it follows nothing and nothing waits for it), which is
        # all there is to take up for most batches; the others go through ``_take``. Their
        # clock stamps and seen ids are the same as ``_take``'s: the clock keeps the latest
        # stamp (order does not matter), and an id is in ``_seen`` before the next event is
        # looked at; only its expiry queue entry and ``new_seen`` are added after the loop.
        out: list[events.Event] = []
        seen = self._seen
        followers = self._followers
        expires = now + self.seen_ttl
        plain: list[str] = []
        latest: float | None = None
        self._taking = batch
        try:
            for event in batch:
                if event.event == LOG_WRITE:
                    continue
                event_id = event.id
                previous = seen.get(event_id)
                if previous is not None and now < previous:
                    continue
                leader = event.follows
                if (leader is None or leader == event_id) and event_id not in followers:
                    occurred = event.occurred
                    if latest is None or occurred > latest:
                        latest = occurred
                    out.append(event)
                    seen[event_id] = expires
                    plain.append(event_id)
                else:
                    self._take(event, now, 0, out)
        finally:
            self._taking = ()
            self._taking_ids = None
        if plain:
            self.clock.update(latest if latest is not None else now, now)
            self.clock_changed = True
            self._queue_seen_many(plain, expires)
        return out

    def _queue_seen_many(self, ids: list[str], expires: float) -> None:
        """``_record_seen`` for ids already set to ``expires`` in ``_seen``."""
        self._queue_group(expires, len(ids))
        self._seen_ids.extend(ids)
        self.new_seen.extend(ids)
        if len(self._seen) > self.max_seen:
            self._evict_oldest()

    def _take(self, event: events.Event, now: float, depth: int, out: list[events.Event]) -> bool:
        """Prefect's ``reactive_evaluation`` around the evaluation; False on max depth."""
        self.clock.update(event.occurred, now)
        self.clock_changed = True
        if depth > self.max_depth:
            return False
        leader = event.follows
        follows_other = leader is not None and leader != event.id
        if follows_other:
            assert leader is not None
            if self.lost_at(event) > now and not self._leader_known(leader, now):
                self._hold(event)
                return True
        out.append(event)
        self._record_seen(event.id, now)
        waiting = self._followers.get(event.id)
        if waiting:
            followers = sorted(
                (self.held[fid] for fid in waiting if fid in self.held),
                key=lambda e: e.occurred,
            )
            for follower in followers:
                if not self._take(follower, now, depth + 1, out):
                    break
        if follows_other:
            self._forget(event)
        return True

    def _leader_known(self, leader: str, now: float) -> bool:
        if self.has_been_seen(leader, now):
            return True
        elsewhere = self.leader_seen
        if elsewhere is None:
            return False
        taking = self._taking_ids
        if taking is None:  # once per batch: a batch of followers must not scan it each
            taking = self._taking_ids = {event.id for event in self._taking}
        return leader not in taking and elsewhere(leader, now)

    def awaited(self) -> Collection[str]:
        """The ids held followers wait for (a live view)."""
        return self._followers.keys()

    def waiting_for(self, leaders: Iterable[str]) -> list[str]:
        """The ids among ``leaders`` that held followers wait for."""
        followers = self._followers
        if not followers:
            return []
        return [leader for leader in leaders if leader in followers]

    def take_released(self, leaders: Sequence[str], now: float) -> list[events.Event]:
        """Takes up the followers of ``leaders`` processed elsewhere; returns them in order.

        For a cluster partition whose held followers' leaders were processed in another
        partition (:attr:`leader_seen` must now say so).
        """
        out: list[events.Event] = []
        for leader in leaders:
            waiting = self._followers.get(leader)
            if not waiting:
                continue
            held = sorted((self.held[f] for f in waiting if f in self.held), key=_occurred)
            for follower in held:
                if not self._take(follower, now, 1, out):
                    break
        return out

    def next_lost(self) -> float | None:
        """Wall time at which the next held follower becomes lost, or None."""
        lost = self._lost
        while lost and lost[0][2] not in self.held:
            heapq.heappop(lost)
        if not lost:
            return None
        return lost[0][0]

    def take_lost(self, now: float) -> list[events.Event]:
        """Takes up the followers lost by ``now``; returns the events to evaluate, in order."""
        lost = self._lost
        found: list[events.Event] = []
        while lost and lost[0][0] <= now:
            due, _, event_id = heapq.heappop(lost)
            event = self.held.get(event_id)
            if event is None or self.lost_at(event) != due:
                continue
            self._forget(event)
            found.append(event)
        if not found:
            return []
        found.sort(key=lambda e: e.occurred)
        out: list[events.Event] = []
        for event in found:
            self._take(event, now, 0, out)
        return out

    # ------------------------------------------------------------------ persistence helpers

    def drain(self) -> tuple[list[str], set[str], bool]:
        """Returns and resets (new seen ids, changed held ids, clock changed)."""
        result = (self.new_seen, self.held_changed, self.clock_changed)
        self.new_seen = []
        self.held_changed = set()
        self.clock_changed = False
        return result
