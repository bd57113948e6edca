"""One engine per database holds beside a cluster: single-node and cluster mode refuse each other."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.cluster.replicas import harness
from tests.integration.engine_process import EngineProcess, serve_refused

pytestmark = pytest.mark.postgres


def _refusal(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [t for t in done.stderr.splitlines() if t.startswith("automations serve")]
    return line


def test_a_single_node_engine_refuses_a_database_replicas_run_on_naming_one(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    replica = cluster.start_replica()
    line = _refusal(serve_refused(cluster.database_url, tmp_path))
    assert "another engine holds this database: automations replica on " in line
    assert replica.proc is not None
    assert f"pid {replica.proc.pid} gRPC {replica.grpc_addr}" in line
    assert replica.proc.poll() is None  # the replica serves on


def test_a_replica_refuses_a_database_a_single_node_engine_holds_naming_it(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    single = EngineProcess(tmp_path, database_url=cluster.database_url).start()
    try:
        assert single.proc is not None
        refused = serve_refused(
            cluster.database_url,
            tmp_path,
            "--cluster",
            "--nats-url",
            cluster.nats_url,
        )
        line = _refusal(refused)
        assert "another engine holds this database: automations on " in line
        assert f"pid {single.proc.pid} gRPC {single.grpc_addr}" in line
        assert single.proc.poll() is None
    finally:
        single.stop()
