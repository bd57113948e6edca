"""The simulation pool's worker processes: killed with a cancelled or overlong call, recycled,
replaced when they die, stopped with the pool."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from automations.api import simulation_pool, simulation_worker
from automations.domain import errors
from automations.v1 import automation_service_pb2
from automations.wire import automations as wire_automations
from tests.waiting import wait_until_async

QUIET = {
    "name": "quiet",
    "trigger": {"type": "event", "posture": "Proactive", "expect": ["ping"], "within": 10},
    "actions": [{"type": "do-nothing"}],
}
"""Fires every 10 s of simulated time: a long ``until`` keeps a worker busy for as long as asked."""

ENDLESS = 10**9
"""An ``until`` no unbounded worker finishes within a test."""


def _request(until: int) -> bytes:
    request = automation_service_pb2.SimulateAutomationRequest(
        automation=wire_automations.automation_proto_from_prefect_json(QUIET)
    )
    request.until.FromSeconds(until)
    return request.SerializeToString()


def _fire_times(answer: bytes) -> list[int]:
    response = automation_service_pb2.SimulateAutomationResponse.FromString(answer)
    return [f.fire_time.seconds for f in response.firings]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
async def pools() -> AsyncIterator[list[simulation_pool.SimulationPool]]:
    """Pools made by a test, closed after it."""
    made: list[simulation_pool.SimulationPool] = []
    yield made
    for pool in made:
        await pool.close()


def _pool(
    made: list[simulation_pool.SimulationPool], **options: object
) -> simulation_pool.SimulationPool:
    pool = simulation_pool.SimulationPool(**options)  # type: ignore[arg-type]
    made.append(pool)
    return pool


async def _busy_worker(pool: simulation_pool.SimulationPool) -> tuple[asyncio.Task[bytes], int]:
    """Starts an endless simulation; returns its task and its worker once it is computing."""
    call = asyncio.ensure_future(pool.run(_request(ENDLESS)))
    (pid,) = await wait_until_async(lambda: pool.processes, what="a worker")
    await wait_until_async(lambda: _alive(pid) and _cpu_seconds(pid) > 0.5, what="busy worker")
    return call, pid


async def test_a_cancelled_call_kills_its_worker_and_the_next_call_gets_a_new_one(
    pools: list[simulation_pool.SimulationPool],
) -> None:
    pool = _pool(pools)
    call, pid = await _busy_worker(pool)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_until_async(lambda: not _alive(pid), what="the worker gone")
    assert _fire_times(await pool.run(_request(30))) == [10, 20, 30]
    assert pool.processes != [pid]


async def test_a_simulation_outrunning_the_timeout_is_killed_and_deadline_exceeded(
    pools: list[simulation_pool.SimulationPool],
) -> None:
    pool = _pool(pools, timeout=1.0)
    await pool.run(_request(10))  # the worker started: the timeout now counts the run alone
    (pid,) = pool.processes
    begin = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded) as info:
        await pool.run(_request(ENDLESS))
    assert 1.0 <= time.monotonic() - begin < 10
    assert info.value.reason == "SIMULATION_TIMEOUT"
    assert "simulation_timeout_seconds" in info.value.message
    await wait_until_async(lambda: not _alive(pid), what="the worker gone")
    assert pool.processes == []


async def test_limits_are_applied_in_the_worker(
    pools: list[simulation_pool.SimulationPool],
) -> None:
    pool = _pool(pools, limits=simulation_worker.Limits(max_firings=5))
    with pytest.raises(errors.InvalidArgument) as info:
        await pool.run(_request(ENDLESS))
    assert (info.value.field, info.value.reason) == ("until", "SIMULATION_LIMIT_EXCEEDED")
    assert _fire_times(await pool.run(_request(50))) == [10, 20, 30, 40, 50]


async def test_a_worker_is_replaced_after_recycle_after_simulations(
    pools: list[simulation_pool.SimulationPool],
) -> None:
    pool = _pool(pools, recycle_after=2)
    seen = []
    for _ in range(3):
        await pool.run(_request(10))
        seen.append(tuple(pool.processes))
    assert len(seen[0]) == 1
    assert seen[1] == ()  # retired after its second simulation
    assert len(seen[2]) == 1
    assert seen[2] != seen[0]
    await wait_until_async(lambda: not _alive(seen[0][0]), what="the retired worker gone")


async def test_a_worker_over_the_memory_bound_is_replaced(
    pools: list[simulation_pool.SimulationPool],
) -> None:
    pool = _pool(pools, max_rss_bytes=1)
    await pool.run(_request(10))
    assert pool.processes == []


async def test_a_worker_dying_mid_call_is_reported_and_replaced(
    pools: list[simulation_pool.SimulationPool],
) -> None:
    pool = _pool(pools)
    call, pid = await _busy_worker(pool)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(errors.AutomationsError) as info:
        await call
    assert info.value.reason == "SIMULATION_WORKER_LOST"
    assert _fire_times(await pool.run(_request(20))) == [10, 20]


async def test_workers_run_simulations_side_by_side(
    pools: list[simulation_pool.SimulationPool],
) -> None:
    pool = _pool(pools, workers=2)
    first = asyncio.ensure_future(pool.run(_request(ENDLESS)))
    second = asyncio.ensure_future(pool.run(_request(ENDLESS)))
    await wait_until_async(lambda: len(pool.processes) == 2, what="two workers")
    pids = pool.processes
    for call in (first, second):
        call.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    await wait_until_async(lambda: not any(map(_alive, pids)), what="both workers gone")


async def test_closing_kills_every_worker_and_refuses_later_calls() -> None:
    pool = simulation_pool.SimulationPool(workers=2)
    call, busy = await _busy_worker(pool)
    await pool.run(_request(10))  # on a second worker, idle afterwards
    (idle,) = (pid for pid in pool.processes if pid != busy)
    await pool.close()
    assert not _alive(busy)
    assert not _alive(idle)
    with pytest.raises(errors.AutomationsError):
        await call
    with pytest.raises(errors.Unavailable):
        await pool.run(_request(10))


async def test_an_idle_worker_that_died_is_replaced_before_a_call_uses_it(
    pools: list[simulation_pool.SimulationPool],
) -> None:
    pool = _pool(pools)
    await pool.run(_request(10))
    (pid,) = pool.processes
    os.kill(pid, signal.SIGKILL)
    await wait_until_async(lambda: pool.processes == [], what="the pool seeing it gone")
    assert _fire_times(await pool.run(_request(20))) == [10, 20]
    assert pool.processes != [pid]
