"""The Node client package against a real engine: quickstart, drift check, and the Node executor."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import automations
from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc
from tests.integration.clients import toolchains
from tests.integration.clients.quickstart_checks import check_quickstart_output
from tests.integration.engine_process import EngineProcess, free_port

pytestmark = pytest.mark.usefixtures("node_ready")

NODE = ["node", "--import", "tsx"]


def test_node_quickstart_streams_10000_events_and_lists_one_firing_per_customer(
    engine: EngineProcess,
) -> None:
    done = subprocess.run(
        [*NODE, "examples/quickstart.ts", engine.grpc_addr],
        cwd=toolchains.NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    check_quickstart_output(done.stdout, engine.grpc_addr)


def test_node_generated_code_matches_protos() -> None:
    done = subprocess.run(
        ["node", "scripts/check-gen.mjs"],
        cwd=toolchains.NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_node_package_typechecks() -> None:
    done = subprocess.run(
        ["node_modules/.bin/tsc", "--noEmit", "-p", "."],
        cwd=toolchains.NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------------------- the executor


@contextlib.contextmanager
def node_executor(log: Path, state: Path | None = None) -> Iterator[str]:
    """Runs clients/node/examples/executor.ts on a free port until SERVING; yields its address."""
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "EXECUTOR_LOG": str(log)}
    if state is not None:
        env["EXECUTOR_STATE"] = str(state)
    stderr_path = log.with_name(log.name + ".stderr")
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            [*NODE, "examples/executor.ts", address],
            cwd=toolchains.NODE_DIR,
            env=env,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, stderr_path.read_text(errors="replace")
            with contextlib.suppress(grpc.RpcError), grpc.insecure_channel(address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1
                )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            assert time.monotonic() < deadline, "the Node executor did not become SERVING"
            time.sleep(0.1)
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def read_log(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_node_executor_dedupes_on_the_idempotency_key(tmp_path: Path) -> None:
    log = tmp_path / "executor.jsonl"
    with node_executor(log) as address, grpc.insecure_channel(address) as channel:
        stub = executor_service_pb2_grpc.ExecutorServiceStub(channel)
        request = executor_service_pb2.ExecuteActionRequest(
            action_type="acme.page-oncall", idempotency_key="inv-1", attempt=1
        )
        request.parameters.update({"message": "disk full"})
        first = stub.ExecuteAction(request, timeout=10)
        request.attempt = 2
        second = stub.ExecuteAction(request, timeout=10)
        assert second == first
        assert first.result["message"] == "disk full"
        with pytest.raises(grpc.RpcError) as raised:
            stub.ExecuteAction(
                executor_service_pb2.ExecuteActionRequest(
                    action_type="acme.other", idempotency_key="inv-2", attempt=1
                ),
                timeout=10,
            )
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    kinds = [(entry["kind"], entry["idempotency_key"], entry["attempt"]) for entry in read_log(log)]
    assert kinds == [("executed", "inv-1", 1), ("duplicate", "inv-1", 2)]


INVOCATIONS = 25


def test_engine_routes_a_custom_action_type_to_the_node_executor_once_per_invocation(
    tmp_path: Path,
) -> None:
    log = tmp_path / "executor.jsonl"
    with node_executor(log) as address:
        engine = EngineProcess(tmp_path, extra_args=("--executor", f"acme.page-oncall={address}"))
        engine.start()
        try:
            with automations.Client(engine.grpc_addr) as client:
                created = client.create_automation(
                    {
                        "name": "page on-call when a disk fills up",
                        "trigger": {
                            "type": "event",
                            "expect": ["acme.disk.full"],
                            "for_each": ["prefect.resource.id"],
                            "posture": "Reactive",
                            "threshold": 1,
                            "within": 0,
                        },
                        "actions": [
                            {"type": "acme.page-oncall", "message": "{{ event.resource.id }}"}
                        ],
                    }
                )
                hosts = [f"acme.host.{i}" for i in range(INVOCATIONS)]
                client.publish(
                    [
                        {"event": "acme.disk.full", "resource": {"prefect.resource.id": h}}
                        for h in hosts
                    ],
                    raise_on_rejected=True,
                )
                deadline = time.monotonic() + 60
                while True:
                    executed = [e for e in read_log(log) if e["kind"] == "executed"]
                    if len({e["idempotency_key"] for e in executed}) >= INVOCATIONS:
                        break
                    assert time.monotonic() < deadline, (
                        f"{len(executed)} of {INVOCATIONS} invocations reached the executor\n"
                        f"{engine.log()[-4000:]}"
                    )
                    time.sleep(0.2)
                time.sleep(1.0)  # anything extra (a second execution of a key) would show now
                firings = client.list_firings(created["id"])
        finally:
            engine.stop()
    executed = [e for e in read_log(log) if e["kind"] == "executed"]
    keys = Counter(e["idempotency_key"] for e in executed)
    assert len(keys) == INVOCATIONS
    assert set(keys.values()) == {1}, keys  # each invocation carried out exactly once
    assert sorted(e["message"] for e in executed) == sorted(hosts)  # rendered by the engine
    assert {e["automation"] for e in executed} == {created["id"]}
    assert {e["action_type"] for e in executed} == {"acme.page-oncall"}
    assert {e["action_index"] for e in executed} == {0}
    assert sorted(e["firing"] for e in executed) == sorted(f["id"] for f in firings)
