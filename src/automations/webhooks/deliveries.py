"""The delivery history: the last requests of each webhook, recorded in batches.

Every request to a known webhook becomes a ``Delivery`` (time, status, error, what the template
rendered, headers with secrets masked, the events' ids). They are kept in memory and written
every ``interval`` seconds in one transaction (``flush``), which also trims each webhook's history
to its newest ``keep``: at thousands of requests per second, one write per request would cost the
single writer as much as the events themselves. In memory, at most ``keep`` per webhook wait;
older ones would be trimmed anyway. A crash loses at most the last interval of history, never an
event: events are committed before their 204.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NamedTuple

from automations.domain import ids, webhooks
from automations.webhooks import rendering, requests

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
"""How often waiting deliveries are written."""


MAX_RECORDED_RENDER = 4096
"""The most characters of a rendered template kept in a delivery record."""


class Pending(NamedTuple):
    """A delivery waiting to be written.

    A tuple, cheap to make for every request: only those still among the newest ``keep`` at the
    next write become ``Delivery`` records, and only then are their headers masked.
    """

    webhook_id: str
    received: float
    method: str
    status: int
    duration: float
    error: str
    rendered: str
    """Cut to ``MAX_RECORDED_RENDER`` (:func:`recorded`)."""
    headers: Mapping[str, str]
    """As received (``Authorization`` and secrets included): masked in the record."""
    event_ids: tuple[str, ...]

    def delivery(self) -> webhooks.Delivery:
        """The record, with a new id."""
        return webhooks.Delivery(
            ids.uuid7(), *self._replace(headers=requests.masked_headers(self.headers))
        )


def recorded(rendered: str) -> str:
    """A rendered template as kept in the delivery history (cut to ``MAX_RECORDED_RENDER``)."""
    return rendering.cut(rendered, MAX_RECORDED_RENDER)


class DeliveryLog:
    """Deliveries waiting to be written.

    Args:
        write: Writes deliveries and trims each webhook's history (one transaction).
        keep: Deliveries kept per webhook.
        interval: Seconds between two writes in :meth:`run`.
    """

    def __init__(
        self,
        write: Callable[[Sequence[webhooks.Delivery]], Awaitable[None]],
        *,
        keep: int,
        interval: float = FLUSH_SECONDS,
    ) -> None:
        self._write = write
        self._keep = keep
        self._interval = interval
        self._waiting: dict[str, collections.deque[Pending]] = {}
        self._lock = asyncio.Lock()

    def add(self, delivery: Pending) -> None:
        """Queues a delivery for the next write."""
        waiting = self._waiting.get(delivery.webhook_id)
        if waiting is None:
            waiting = self._waiting[delivery.webhook_id] = collections.deque(maxlen=self._keep)
        waiting.append(delivery)

    async def flush(self) -> None:
        """Writes every waiting delivery now."""
        async with self._lock:
            if not self._waiting:
                return
            taken, self._waiting = self._waiting, {}
            batch = [d.delivery() for waiting in taken.values() for d in waiting]
            await self._write(batch)

    async def run(self) -> None:
        """Writes every ``interval`` seconds until cancelled (a failed write is logged)."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                logger.exception("recording webhook deliveries failed; they are lost")
