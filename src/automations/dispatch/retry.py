"""When a retryable failure is retried, and when retrying stops (dead letter)."""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by age.

    Attributes:
        max_attempts: Attempts in all (the first included) before an invocation is dead-lettered.
        max_age: Seconds after its creation past which an invocation is not retried again.
        base_delay: The delay before the first retry, before jitter (seconds).
        max_delay: The largest delay (seconds).
    """

    max_attempts: int = 5
    max_age: float = 3600.0
    base_delay: float = 1.0
    max_delay: float = 300.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        "Equal jitter": half of the exponential delay is fixed, the other half random, so retries
        of many invocations that failed together spread out but none comes back at once.
        """
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** max(0, attempt - 1))
        draw = (rng or random).random()
        return ceiling / 2.0 + draw * ceiling / 2.0

    def exhausted(self, attempt: int, created: float, retry_at: float) -> bool:
        """True when attempt ``attempt`` was the last one allowed (by count or by age)."""
        return attempt >= self.max_attempts or retry_at - created > self.max_age
