"""kill -9 of a replica under load: its partitions move, nothing is lost or done twice.

The ALIGNED automation calls a webhook (through a webhook executor process, to a recording HTTP
receiver, slow enough that calls are in flight at the kill): every invocation the cluster committed
reaches the receiver, and each idempotency key once. The oracle runs the same triggers with
do-nothing actions: only firings are compared with it.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster.replicas import harness, workload
from tests.integration.executors.executor_process import ExecutorProcess, Receiver, Reply
from tests.waiting import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]  # slow on a busy machine


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        r.reply = Reply(delay=0.02)
        yield r


@pytest.fixture
def webhook_executor(tmp_path: Path) -> Iterator[ExecutorProcess]:
    executor = ExecutorProcess("webhook", tmp_path).start()
    try:
        yield executor
    finally:
        executor.stop()


def test_a_killed_replicas_partitions_move_and_its_windows_fire_once_elsewhere(
    cluster: harness.Cluster,
    tmp_path: Path,
    receiver: Receiver,
    webhook_executor: ExecutorProcess,
) -> None:
    cluster.replica_args = ("--executor", f"call-webhook={webhook_executor.addr}")
    replicas = [cluster.start_replica() for _ in range(3)]
    with harness.Oracle(tmp_path) as oracle:
        for automation_id, spec in workload.EVERY.items():
            called = workload.calling(spec, receiver.url + "/hook")
            cluster.create_automation(
                called if automation_id == workload.ALIGNED_ID else spec, automation_id
            )
            oracle.create_automation(spec, automation_id)
        cluster.wait_owners(3)
        wait_until(lambda: _synced(cluster), timeout=10, what="automations synced")
        victim = replicas[1]
        doomed = {p for p in range(cluster.partitions) if cluster.owner_of(p) is victim}
        assert doomed
        # absence windows that the victim holds when it dies (due after the kill)
        starts = [
            workload.event("test.start", r)
            for r in workload.resources_in(doomed, 4, partition_count=cluster.partitions)
        ]
        cluster.publish(starts)
        oracle.publish(starts)
        wait_until(
            lambda: {e["id"] for e in starts} <= set(cluster.logged()),
            timeout=10,
            what="the windows committed by the victim",
        )
        # load through every replica while the victim is killed
        # 200 resources pinged 2 or 3 times: one ALIGNED firing (a webhook call) each
        batches = [
            workload.pings([r % 200 for r in range(start, start + 25)])
            for start in range(0, 500, 25)
        ]
        published: list[list[dict[str, object]]] = []
        loader = threading.Thread(target=_load, args=(cluster, batches, published))
        loader.start()
        time.sleep(0.5)
        killed_at = time.monotonic()
        victim.kill9()
        wait_until(
            lambda: all(cluster.owner_of(p) not in (None, victim) for p in doomed),
            timeout=15,
            interval=0.05,
            what="the victim's partitions owned by survivors",
        )
        moved_in = time.monotonic() - killed_at
        loader.join(timeout=60)
        assert not loader.is_alive()
        for batch in published:
            oracle.publish(batch)
        wait_until(  # the windows come due
            lambda: sum(f[0] == workload.ABSENCE_ID for f in cluster.firings()) >= len(starts),
            timeout=workload.ABSENCE_SECONDS + 15,
            what="the windows fired by survivors",
        )
        cluster.wait_quiescent()
        wait_until(
            lambda: sum(f[0] == workload.ABSENCE_ID for f in oracle.firings()) == len(starts),
            timeout=20,
            what="the oracle's windows",
        )
        expected = workload.comparable(oracle.firings())

    acked = cluster.acked
    logged = collections.Counter(cluster.logged())
    assert all(logged[event_id] == 1 for event_id in acked)
    got = workload.comparable(cluster.firings())
    windows = [f for f in got if f[0] == workload.ABSENCE_ID]
    assert len(windows) == len(starts) == len(set(windows)), (windows, starts)
    assert got == expected
    takeovers = [h for h in cluster.partition_history() if h[0] in doomed and h[1] > 1]
    assert {h[0] for h in takeovers} == doomed
    # every committed invocation reached the receiver, each idempotency key once
    committed = [i for i in cluster.invocations() if i[0] == workload.ALIGNED_ID]
    assert len(committed) == sum(f[0] == workload.ALIGNED_ID for f in got) > 0
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
    print(f"partitions of the killed replica owned elsewhere {moved_in:.2f} s after kill -9")


def _load(
    cluster: harness.Cluster,
    batches: list[list[dict[str, object]]],
    published: list[list[dict[str, object]]],
) -> None:
    for batch in batches:
        cluster.publish(batch)
        published.append(batch)
        time.sleep(0.05)


def _synced(cluster: harness.Cluster) -> bool:
    return all(
        harness.metric(r, "automations_loaded_automations") == len(workload.EVERY)
        for r in cluster.live()
    )
