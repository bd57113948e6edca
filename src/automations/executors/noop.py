"""The ``noop`` executor: succeeds at once with ``{}``, for benchmarks and tests.

It serves ``noop`` and any type given with ``--action-type``, deduplicates in memory only and does
as little as possible per call (no deadline timer, metrics only with ``--metrics-addr``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automations.executor.v1 import executor_service_pb2

ACTION_TYPE = "noop"
"""The action type this executor always serves."""

_EMPTY: Mapping[str, Any] = {}


async def succeed(request: executor_service_pb2.ExecuteActionRequest) -> Mapping[str, Any]:
    """Does nothing; the result is ``{}``."""
    return _EMPTY
