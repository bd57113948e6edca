"""Crash points for tests, and a commit delay for benchmarks (both unset in production).

``AUTOMATIONS_TEST_CRASH_AT=<point>[:<n>]`` (read once, at import) makes the process exit with
:data:`EXIT_CODE` (``os._exit``: no cleanup, no lease released, no transaction ended) the ``n``-th
time (default the first) it reaches ``<point>``. Unset, :func:`reached` compares one string and
returns. The points, in the order a batch meets them:

- ``during-takeover``: partitions acquired (committed), before their state is loaded;
- ``before-commit``: a partition commit's statements sent, before its COMMIT;
- ``after-commit``: a partition commit committed, before its outbox rows are relayed and its
  invocations dispatched;
- ``mid-relay``: outbox rows published (PubAcks in), before they are deleted;
- ``after-executor-call``: executors answered, before the outcomes are recorded.

Only the cluster's integration tests set it; nothing else reads it.

``AUTOMATIONS_TEST_COMMIT_DELAY_SECONDS=<s>`` makes every partition commit wait ``s`` seconds
before its COMMIT (:func:`commit_delay`), as a distant database would: ``bench.cluster``'s
latency-bound run, where replicas add up because each one's writer waits, not computes.
"""

from __future__ import annotations

import os
import sys
import time

POINTS = ("during-takeover", "before-commit", "after-commit", "mid-relay", "after-executor-call")
ENV = "AUTOMATIONS_TEST_CRASH_AT"
EXIT_CODE = 86
"""The exit status of a crash at a point (tests tell it from other deaths)."""


def _parse(value: str) -> tuple[str, int]:
    point, _, nth = value.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV}: unknown crash point {point!r} (one of {', '.join(POINTS)})")
    return point, int(nth or 1)


DELAY_ENV = "AUTOMATIONS_TEST_COMMIT_DELAY_SECONDS"
_delay = float(os.environ.get(DELAY_ENV) or 0.0)
_target, _nth = _parse(os.environ[ENV]) if os.environ.get(ENV) else ("", 0)
_count = 0


def reached(point: str) -> None:
    """Exits the process here if this is the configured point's ``n``-th passage."""
    global _count
    if point != _target:
        return
    _count += 1
    if _count >= _nth:
        sys.stderr.write(f"crash point {point} reached ({_count}): exiting\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)


def commit_delay() -> None:
    """Waits the configured commit delay (nothing when unset)."""
    if _delay > 0.0:
        time.sleep(_delay)
