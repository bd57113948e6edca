"""Waiting for a condition instead of sleeping a fixed time.

A fixed sleep is either too short on a busy machine (the test fails) or too long on an idle one
(the suite is slow). These poll a condition often and give up only after a generous bound, so a
test is as fast as the machine allows and still passes when the machine is slow.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT = 30.0
"""The default bound: far beyond what any condition here needs on an idle machine."""


def wait_until(
    predicate: Callable[[], T], *, timeout: float = TIMEOUT, interval: float = 0.02, what: str = ""
) -> T:
    """Calls ``predicate`` until it returns something truthy, and returns that.

    Args:
        predicate: The condition; exceptions it raises are not caught.
        timeout: Seconds after which the wait fails.
        interval: Seconds between two calls.
        what: What is awaited, for the failure message.

    Raises:
        AssertionError: The condition did not hold within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    timeout: float = TIMEOUT,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Like :func:`wait_until`, without blocking the event loop; ``predicate`` may be async."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)
