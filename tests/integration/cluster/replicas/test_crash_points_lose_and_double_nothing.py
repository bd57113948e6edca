"""A replica exiting at each crash point under load: nothing lost, nothing done twice.

Two replicas run throughout; for each crash point (``cluster.crash_points``) one more joins with
``AUTOMATIONS_TEST_CRASH_AT`` set (the five together), takes partitions over and exits there (as kill -9 would leave
it: no lease released, a transaction cut short, rows published and not deleted, an executor's
answer not recorded). Then, after quiescence: every acknowledged event is logged once, the firings
equal a single-node oracle's, and every committed webhook invocation reached the receiver with
each idempotency key once.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from automations.cluster import crash_points
from tests.integration.cluster.replicas import harness, workload
from tests.integration.engine_process import EngineProcess
from tests.integration.executors.executor_process import ExecutorProcess, Receiver, Reply
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]  # slow on a busy machine

CRASHES = (
    "during-takeover:1",
    "before-commit:2",
    "after-commit:2",
    "mid-relay:1",
    "after-executor-call:1",
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        r.reply = Reply(delay=0.01)
        yield r


@pytest.fixture
def webhook_executor(tmp_path: Path) -> Iterator[ExecutorProcess]:
    executor = ExecutorProcess("webhook", tmp_path).start()
    try:
        yield executor
    finally:
        executor.stop()


def test_a_replica_exiting_at_any_crash_point_loses_and_doubles_nothing(
    cluster: harness.Cluster,
    tmp_path: Path,
    receiver: Receiver,
    webhook_executor: ExecutorProcess,
) -> None:
    cluster.replica_args = ("--executor", f"call-webhook={webhook_executor.addr}")
    oracle = harness.Oracle(tmp_path)
    specs = {
        workload.ALIGNED_ID: workload.calling(workload.ALIGNED, receiver.url + "/hook"),
        workload.KEYED_ID: workload.KEYED,
    }
    try:
        _start_together([cluster.add_replica(), cluster.add_replica(), oracle.engine])
        for automation_id, spec in specs.items():
            cluster.create_automation(spec, automation_id)
            oracle.create_automation(workload.EVERY[automation_id], automation_id)
        wait_until(
            lambda: (
                cluster.owner_count() == 2
                and all(
                    harness.metric(r, "automations_loaded_automations") == len(specs)
                    for r in cluster.live()
                )
            ),
            timeout=20,
            what="both replicas owning partitions, the automations synced",
        )
        stop = threading.Event()
        loader = threading.Thread(target=_load, args=(cluster, oracle, stop))
        loader.start()
        try:  # they join together, each exits at its point
            crashers = [cluster.add_replica({crash_points.ENV: crash}) for crash in CRASHES]
            _start_together(crashers, exiting=True)
            for crash, crasher in zip(CRASHES, crashers, strict=True):
                wait_until(_exited(crasher), timeout=30, what=f"the replica exiting at {crash}")
                assert crasher.proc is not None
                assert crasher.proc.returncode == crash_points.EXIT_CODE, crasher.log()[-3000:]
                assert f"crash point {crash.split(':')[0]} reached" in crasher.log()
        finally:
            stop.set()
            loader.join(timeout=60)
        cluster.wait_quiescent(timeout=60)
        expected = workload.comparable(oracle.firings())
    finally:
        oracle.engine.stop()
    logged = collections.Counter(cluster.logged())
    assert all(logged[event_id] == 1 for event_id in cluster.acked)
    assert workload.comparable(cluster.firings()) == expected
    committed = [i for i in cluster.invocations() if i[0] == workload.ALIGNED_ID]
    assert len(committed) == sum(f[0] == workload.ALIGNED_ID for f in expected) > 0
    wait_until(
        lambda: (
            {i[2] for i in cluster.invocations() if i[0] == workload.ALIGNED_ID} == {"succeeded"}
        ),
        timeout=30,
        what="every invocation succeeded",
    )
    keys = collections.Counter(r.headers["idempotency-key"] for r in receiver.requests)
    assert set(keys) == {i[1] for i in committed}
    assert max(keys.values()) == 1, keys.most_common(3)


def _exited(replica: EngineProcess) -> Callable[[], bool]:
    return lambda: replica.proc is not None and replica.proc.poll() is not None


def _start_together(processes: list[EngineProcess], *, exiting: bool = False) -> None:
    """Starts processes at once; ``exiting``: one may exit before it serves (its crash point)."""
    errors: list[BaseException] = []

    def start(process: EngineProcess) -> None:
        try:
            process.start(timeout=60)
        except RuntimeError as exc:  # exited while starting
            if not exiting:
                errors.append(exc)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(p,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def _load(cluster: harness.Cluster, oracle: harness.Oracle, stop: threading.Event) -> None:
    """Batches of 10 new resources pinged twice each (10 ALIGNED firings) until stopped."""
    start = 0
    while not stop.is_set():
        resources = list(range(start, start + 10))
        batch = workload.pings(resources + resources)
        cluster.publish(batch)
        oracle.publish(batch)
        start += 10
        time.sleep(0.1)
