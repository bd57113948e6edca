"""A replica that owns no partition serves ingest; ``cluster status`` and the metrics show who owns what."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.cluster.replicas import harness, workload
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def one_partition(tmp_path: Path, database_url: str, nats_url: str) -> Iterator[harness.Cluster]:
    made = harness.Cluster(tmp_path, database_url, nats_url, partitions=1)
    try:
        yield made
    finally:
        made.close()


def test_a_replica_owning_nothing_is_serving_and_acknowledges_events(
    one_partition: harness.Cluster,
) -> None:
    cluster = one_partition
    replicas = [cluster.start_replica(), cluster.start_replica()]
    cluster.create_automation(workload.ALIGNED, workload.ALIGNED_ID)
    wait_until(
        lambda: all(
            harness.metric(r, "automations_loaded_automations") == 1
            and harness.metric(r, "automations_cluster_partitions_owned")
            == (cluster.owner_of(0) is r)
            for r in replicas
        ),
        timeout=20,
        what="the automation synced and partition 0 settled",
    )
    owner = cluster.owner_of(0)
    assert owner is not None
    (idle,) = [r for r in replicas if r is not owner]  # one partition: the other owns nothing
    with idle.channel() as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="automations.v1.EventService"), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    events = workload.pings([1, 1, 2, 2])
    with cluster.client(idle) as api:
        results = api.publish(events)
    assert all(r.ok for r in results)
    cluster.wait_quiescent()
    fired = {json.loads(labels)["prefect.resource.id"] for _, _, labels in cluster.firings()}
    assert fired == {"res.1", "res.2"}  # evaluated by the owner
    assert harness.metric(idle, "automations_cluster_partitions_owned") == 0
    assert harness.metric(owner, "automations_cluster_partitions_owned") == 1
    assert harness.metric(owner, "automations_cluster_partition_acquisitions_total") >= 1

    status = _status(cluster, "--json")
    assert status.returncode == 0, status.stderr
    seen = json.loads(status.stdout)
    assert seen["partition_count"] == 1
    assert seen["log"] == "read"
    by_addr = {r["grpc_addr"]: r for r in seen["replicas"]}
    assert by_addr[owner.grpc_addr]["partitions"] == [0]
    assert by_addr[idle.grpc_addr]["partitions"] == []
    assert all(r["alive"] for r in seen["replicas"])
    (partition,) = seen["partitions"]
    assert partition["raw_seq"] >= 1
    assert partition["raw_lag"] == 0
    assert partition["fwd_lag"] == 0

    text = _status(cluster)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("cluster: 1 partitions, log read")
    assert f"grpc {owner.grpc_addr}" in text.stdout
    assert "partitions 0: none" in text.stdout  # the idle replica's line


def _status(cluster: harness.Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "automations.cli.main",
            "cluster",
            "status",
            "--database-url",
            cluster.database_url,
            "--nats-url",
            cluster.nats_url,
            "--stream-prefix",
            cluster.prefix,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
