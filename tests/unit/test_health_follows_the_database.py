"""The engine's database watch reports each change of the database's health once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from automations import server
from automations.domain import errors


async def watch(answers: list[str], *, timeout: float = 30.0) -> list[bool]:
    """Runs the watch over scripted ping answers (ok, fail, hang); returns what it reported.

    A ``hang`` answers only once the watch has reported the database down: however slow the
    machine, it outlasts the ping ``timeout``, and the answers after it are not starved.
    """
    reported: list[bool] = []
    script = iter(answers)
    finished = asyncio.Event()
    loop = asyncio.get_running_loop()
    release = threading.Event()

    def ping() -> None:
        answer = next(script, None)
        if answer is None:
            loop.call_soon_threadsafe(finished.set)
            return
        if answer == "fail":
            raise errors.Unavailable("database unavailable: OperationalError")
        if answer == "hang":
            release.wait(60)

    async def set_serving(serving: bool) -> None:
        reported.append(serving)
        if not serving:
            release.set()

    task = asyncio.create_task(
        server.follow_database(ping, set_serving, interval=0.01, timeout=timeout)
    )
    try:
        await asyncio.wait_for(finished.wait(), 60)
    finally:
        release.set()
        task.cancel()
    return reported


async def test_a_failing_database_is_reported_once_and_its_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reported = await watch(["ok", "fail", "fail", "fail", "ok", "ok", "fail", "ok"])
    assert reported == [False, True, False, True]
    assert sum("database unreachable" in r.message for r in caplog.records) == 2


async def test_a_ping_that_hangs_counts_as_a_failure() -> None:
    # the pings that answer must answer within the timeout even on a busy machine
    assert await watch(["ok", "hang", "ok"], timeout=1.0) == [False, True]
