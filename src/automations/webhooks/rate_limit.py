"""Per-webhook rate limits: a token bucket per webhook, refilled at its ``rate_limit``.

A webhook with ``rate_limit`` r accepts r requests per second on average and bursts of up to
max(r, 1) at once; a request beyond that is answered 429 with ``Retry-After`` (the whole seconds
until a token is back). The buckets live in memory (one engine process), so a restart starts them
full.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by webhook id.

    Args:
        clock: Monotonic seconds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # id -> (tokens, at)

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
        capacity = max(rate, 1.0)
        tokens, at = self._buckets.get(webhook_id, (capacity, now))
        tokens = min(capacity, tokens + (now - at) * rate)
        if tokens >= 1.0:
            self._buckets[webhook_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[webhook_id] = (tokens, now)
        return (1.0 - tokens) / rate


def retry_after(seconds: float) -> str:
    """The ``Retry-After`` value for a wait: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
