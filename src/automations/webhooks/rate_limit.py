"""Per-webhook rate limits: a token bucket per webhook, refilled at its ``rate_limit``.

A webhook with ``rate_limit`` r accepts r requests per second on average and bursts of up to
max(r, 1) at once; a request beyond that is answered 429 with ``Retry-After`` (the whole seconds
until a token is back). A restart of the engine starts them full.

The engine serves webhooks from several front processes (``endpoint``), and a client's keep-alive
connection always reaches the same one, so a limit split between them (r/N each) would be wrong:
the buckets live in one table of shared memory (:class:`SharedBuckets`, a ``memfd`` the engine
creates and every front maps), one slot of two doubles per rate-limited webhook, updated under a
lock on that slot's bytes (a POSIX record lock: one process at a time; the fronts call it from
their event loop only). The engine gives each rate-limited webhook its slot (:class:`Slots`) when
it pushes the webhooks, resetting a slot (full bucket) before handing it to a webhook. Without a
shared table (one process, the unit tests) the buckets are a dict in memory.
"""

from __future__ import annotations

import fcntl
import math
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterable

from automations.domain import webhooks

SLOT_BYTES = 16
"""A slot: the tokens spent and when they were counted (``time.monotonic``), two doubles; zeros
are a full bucket."""
DEFAULT_SLOTS = 65_536
"""Slots in the shared table (1 MiB, allocated as touched)."""

_SLOT = struct.Struct("=dd")


def _take(spent: float, at: float, now: float, rate: float) -> tuple[float, float]:
    """Takes a token from a bucket if there is one.

    Args:
        spent: The tokens spent, as counted at ``at`` (0: a full bucket).
        at: When.
        now: Now.
        rate: The refill rate, tokens per second.

    Returns:
        The tokens spent now, and 0 or the seconds until a token is back.
    """
    spent = max(0.0, spent - (now - at) * rate)
    tokens = max(rate, 1.0) - spent
    if tokens >= 1.0:
        return spent + 1.0, 0.0
    return spent, (1.0 - tokens) / rate


class SharedBuckets:
    """Token buckets in shared memory, one slot each (see the module docstring).

    Args:
        fd: The table's file descriptor (:meth:`create` in the engine, inherited by the fronts).
        slots: Its size in slots.
    """

    def __init__(self, fd: int, slots: int = DEFAULT_SLOTS) -> None:
        self.fd = fd
        self.slots = slots
        self._map = mmap.mmap(fd, slots * SLOT_BYTES)

    @classmethod
    def create(cls, slots: int = DEFAULT_SLOTS) -> SharedBuckets:
        """A new table, every bucket full (inheritable: give ``fd`` to the fronts)."""
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("automations-webhook-rate-limits", 0)
        else:  # not Linux: an unlinked temporary file serves the same
            with tempfile.TemporaryFile() as backing:
                fd = os.dup(backing.fileno())
        os.ftruncate(fd, slots * SLOT_BYTES)
        os.set_inheritable(fd, True)
        return cls(fd, slots)

    def acquire(self, slot: int, rate: float, now: float) -> float:
        """Takes a token from slot ``slot``'s bucket: 0, or the seconds until one is back."""
        offset = slot * SLOT_BYTES
        fcntl.lockf(self.fd, fcntl.LOCK_EX, SLOT_BYTES, offset)
        try:
            spent, at = _SLOT.unpack_from(self._map, offset)
            spent, wait = _take(spent, at, now, rate)
            _SLOT.pack_into(self._map, offset, spent, now)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, SLOT_BYTES, offset)
        return wait

    def reset(self, slot: int) -> None:
        """Fills slot ``slot``'s bucket (before it is given to another webhook)."""
        offset = slot * SLOT_BYTES
        fcntl.lockf(self.fd, fcntl.LOCK_EX, SLOT_BYTES, offset)
        try:
            _SLOT.pack_into(self._map, offset, 0.0, 0.0)
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN, SLOT_BYTES, offset)

    def close(self) -> None:
        """Unmaps the table and closes its descriptor (in the engine, once the fronts are gone)."""
        self._map.close()
        os.close(self.fd)


class Slots:
    """The engine's assignment of shared slots to rate-limited webhooks.

    A webhook keeps its slot while it is rate-limited (its bucket survives an update); a slot
    is reset before it is given to another webhook. When the table is full, every slot is
    reassigned to the webhooks rate-limited now (their buckets start full).
    """

    def __init__(self, buckets: SharedBuckets) -> None:
        self._buckets = buckets
        self._by_webhook: dict[str, int] = {}
        self._next = 0

    def assign(self, hooks: Iterable[webhooks.Webhook]) -> dict[str, int]:
        """The slots of the rate-limited ones among ``hooks`` (the current webhooks)."""
        limited = [hook.id for hook in hooks if hook.rate_limit > 0]
        known = self._by_webhook
        kept = {hook_id: known[hook_id] for hook_id in limited if hook_id in known}
        new = [hook_id for hook_id in limited if hook_id not in kept]
        if self._next + len(new) > self._buckets.slots:
            kept, new, self._next = {}, limited, 0
        for hook_id in new:
            if self._next >= self._buckets.slots:
                break  # more rate-limited webhooks than slots: the rest are limited per front
            self._buckets.reset(self._next)
            kept[hook_id] = self._next
            self._next += 1
        self._by_webhook = kept
        return dict(kept)


class RateLimiter:
    """Token buckets keyed by webhook id: in the shared table when given one, else in memory.

    Args:
        clock: Monotonic seconds (system-wide: ``time.monotonic`` is the same in every process).
        shared: The shared table; its slots come with the webhooks (:meth:`use_slots`).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, shared: SharedBuckets | None = None
    ) -> None:
        self._clock = clock
        self._shared = shared
        self._slots: dict[str, int] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # id -> (spent, at)

    def use_slots(self, slots: dict[str, int]) -> None:
        """Takes the shared slots of the rate-limited webhooks (pushed with the webhooks)."""
        self._slots = slots

    def acquire(self, webhook_id: str, rate: float) -> float:
        """Takes a token for one request.

        Args:
            webhook_id: The webhook.
            rate: Its ``rate_limit`` (requests per second; 0: no limit).

        Returns:
            0 when the request may go on, else the seconds until it may be retried.
        """
        if rate <= 0:
            return 0.0
        now = self._clock()
        if self._shared is not None:
            slot = self._slots.get(webhook_id)
            if slot is not None:
                return self._shared.acquire(slot, rate, now)
        spent, at = self._buckets.get(webhook_id, (0.0, now))
        spent, wait = _take(spent, at, now, rate)
        self._buckets[webhook_id] = (spent, now)
        return wait


def retry_after(seconds: float) -> str:
    """The ``Retry-After`` value for a wait: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
