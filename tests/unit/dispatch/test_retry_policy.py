"""Exponential backoff with jitter, bounded by attempts and age."""

from __future__ import annotations

import random

from automations.dispatch.retry import RetryPolicy


def test_delays_double_within_their_jitter_band_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        for _ in range(50):
            delay = policy.delay(attempt, rng)
            assert ceiling / 2 <= delay <= ceiling


def test_jitter_spreads_retries_of_invocations_that_failed_together() -> None:
    policy = RetryPolicy(base_delay=10.0)
    rng = random.Random(1)
    assert len({round(policy.delay(3, rng), 6) for _ in range(20)}) == 20


def test_the_last_attempt_or_the_age_limit_ends_retrying() -> None:
    policy = RetryPolicy(max_attempts=3, max_age=100.0)
    assert not policy.exhausted(2, created=0.0, retry_at=50.0)
    assert policy.exhausted(3, created=0.0, retry_at=50.0)
    assert policy.exhausted(1, created=0.0, retry_at=101.0)
