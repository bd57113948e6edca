from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest

from automations import executor


@pytest.fixture
def dedupe(tmp_path: Path) -> executor.Deduplicator:
    return executor.Deduplicator(executor.SqliteIdempotencyStore(tmp_path / "s.db"))


async def test_a_repeated_key_returns_the_first_result_without_acting(
    dedupe: executor.Deduplicator,
) -> None:
    calls = 0

    async def act() -> dict[str, object]:
        nonlocal calls
        calls += 1
        return {"result": {"n": calls}}

    assert await dedupe.run("k", act) == ({"result": {"n": 1}}, False)
    assert await dedupe.run("k", act) == ({"result": {"n": 1}}, True)
    assert calls == 1


async def test_a_concurrent_repeat_waits_for_the_first_call(dedupe: executor.Deduplicator) -> None:
    calls = 0
    release = asyncio.Event()

    async def act() -> dict[str, object]:
        nonlocal calls
        calls += 1
        await release.wait()
        return {"result": {"n": calls}}

    first = asyncio.create_task(dedupe.run("k", act))
    second = asyncio.create_task(dedupe.run("k", act))
    await asyncio.sleep(0.01)
    release.set()
    assert await first == ({"result": {"n": 1}}, False)
    assert await second == ({"result": {"n": 1}}, True)
    assert calls == 1


async def test_a_retryable_failure_lets_the_retry_act_again(dedupe: executor.Deduplicator) -> None:
    outcomes: list[object] = [
        executor.ActionError(grpc.StatusCode.UNAVAILABLE, "down", "DOWN"),
        {"result": {"ok": True}},
    ]

    async def act() -> dict[str, object]:
        outcome = outcomes.pop(0)
        if isinstance(outcome, executor.ActionError):
            raise outcome
        return outcome  # type: ignore[return-value]

    first, _ = await dedupe.run("k", act)
    assert isinstance(first, executor.ActionError) and first.code is grpc.StatusCode.UNAVAILABLE
    assert await dedupe.run("k", act) == ({"result": {"ok": True}}, False)


async def test_a_final_failure_is_returned_again_without_acting(
    dedupe: executor.Deduplicator,
) -> None:
    calls = 0

    async def act() -> dict[str, object]:
        nonlocal calls
        calls += 1
        raise executor.ActionError(grpc.StatusCode.INVALID_ARGUMENT, "bad", "BAD")

    first, repeat1 = await dedupe.run("k", act)
    second, repeat2 = await dedupe.run("k", act)
    assert isinstance(first, executor.ActionError) and isinstance(second, executor.ActionError)
    assert (second.code, second.message, repeat1, repeat2) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "bad",
        False,
        True,
    )
    assert calls == 1


async def test_an_unexpected_exception_is_a_retryable_internal_error(
    dedupe: executor.Deduplicator,
) -> None:
    async def boom() -> dict[str, object]:
        raise RuntimeError("secret detail")

    outcome, _ = await dedupe.run("k", boom)
    assert isinstance(outcome, executor.ActionError)
    assert outcome.code is grpc.StatusCode.INTERNAL
    assert "secret" not in outcome.message

    async def fine() -> dict[str, object]:
        return {"result": {}}

    assert await dedupe.run("k", fine) == ({"result": {}}, False)


async def test_an_action_whose_caller_went_away_completes_and_answers_the_retry(
    dedupe: executor.Deduplicator,
) -> None:
    calls = 0

    async def slow() -> dict[str, object]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return {"result": {"done": True}}

    task = asyncio.create_task(dedupe.run("k", slow))
    await asyncio.sleep(0.01)
    task.cancel()  # the engine's deadline passed, or the engine died
    with pytest.raises(asyncio.CancelledError):
        await task

    async def again() -> dict[str, object]:
        raise AssertionError("the first call's side effect must not be repeated")

    # a retry while the first call still runs waits for it; one after it gets the record
    assert await dedupe.run("k", again) == ({"result": {"done": True}}, True)
    assert await dedupe.run("k", again) == ({"result": {"done": True}}, True)
    assert calls == 1


async def test_a_key_running_in_another_live_process_is_aborted(tmp_path: Path) -> None:
    other = executor.SqliteIdempotencyStore(tmp_path / "s.db", pid=os.getppid())
    other.claim("k")
    dedupe = executor.Deduplicator(executor.SqliteIdempotencyStore(tmp_path / "s.db"))

    async def act() -> dict[str, object]:
        raise AssertionError("must not act")

    outcome, _ = await dedupe.run("k", act)
    assert isinstance(outcome, executor.ActionError)
    assert outcome.code is grpc.StatusCode.ABORTED
    assert outcome.retryable
