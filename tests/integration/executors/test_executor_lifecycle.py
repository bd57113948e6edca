"""Health, reflection, metrics, graceful stop and parent death of a real executor process."""

from __future__ import annotations

import subprocess
import threading
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.engine_process import free_port
from tests.integration.executors.executor_process import (
    ExecutorProcess,
    Receiver,
    Reply,
    failure,
    request,
    running_executor,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)


def test_health_and_reflection_name_the_executor_service(tmp_path: Path) -> None:
    with running_executor("noop", tmp_path) as executor, grpc.insecure_channel(executor.addr) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "automations.executor.v1.ExecutorService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        replies = list(
            reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
        )
        names = {s.name for s in replies[0].list_services_response.service}
        assert {"automations.executor.v1.ExecutorService", "grpc.health.v1.Health"} <= names


def test_noop_serves_extra_action_types_and_dedupes(tmp_path: Path) -> None:
    with (
        running_executor("noop", tmp_path, args=("--action-type", "bench.act")) as executor,
        executor.stub() as stub,
    ):
        for action_type in ("noop", "bench.act", "bench.act"):
            reply = stub.ExecuteAction(request(action_type, "k1"), timeout=5)
            assert not reply.HasField("result") or not reply.result.fields
        with pytest.raises(grpc.RpcError) as info:
            stub.ExecuteAction(request("call-webhook", "k2"), timeout=5)
    assert failure(info.value).reason == "ACTION_TYPE_UNSUPPORTED"


def test_sigterm_lets_the_call_in_flight_finish_and_exits_0(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.reply = Reply(delay=1.0)
    outcome: dict[str, object] = {}
    with running_executor("webhook", tmp_path) as executor:

        def call() -> None:
            with executor.stub() as stub:
                try:
                    reply = stub.ExecuteAction(
                        request("call-webhook", str(uuid.uuid4()), {"url": receiver.url}),
                        timeout=10,
                    )
                    outcome["status_code"] = reply.result["status_code"]
                except grpc.RpcError as exc:
                    outcome["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        wait_until(receiver.count, what="the call to reach the receiver")
        assert executor.terminate() == 0
        caller.join(30)
    assert outcome == {"status_code": 200}
    assert "draining" in executor.log()


def test_metrics_count_outcomes(tmp_path: Path, receiver: Receiver) -> None:
    metrics_addr = f"127.0.0.1:{free_port()}"
    with (
        running_executor("webhook", tmp_path, args=("--metrics-addr", metrics_addr)) as executor,
        executor.stub() as stub,
    ):
        for _ in range(2):
            stub.ExecuteAction(request("call-webhook", "same", {"url": receiver.url}), timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.ExecuteAction(request("call-webhook", "bad", {}), timeout=10)
        text = urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5).read().decode()
    labels = 'action_type="call-webhook",executor="webhook"'
    assert f'automations_executor_actions_total{{{labels},outcome="ok"}} 1.0' in text
    assert f'automations_executor_actions_total{{{labels},outcome="duplicate"}} 1.0' in text
    assert f'automations_executor_actions_total{{{labels},outcome="failed"}} 1.0' in text
    assert f"automations_executor_action_duration_seconds_count{{{labels}}} 3.0" in text


def test_the_executor_stops_when_its_parent_dies(tmp_path: Path) -> None:
    parent = subprocess.Popen(["sleep", "60"])
    try:
        executor = ExecutorProcess(
            "noop", tmp_path, env={"AUTOMATIONS_PARENT_PID": str(parent.pid)}
        )
        executor.start()
        try:
            parent.kill()
            parent.wait(5)
            assert executor.proc is not None
            assert executor.proc.wait(10) == 0
            assert "parent process" in executor.log()
        finally:
            executor.stop()
    finally:
        parent.kill()
        parent.wait(5)


def test_an_unknown_executor_name_exits_2(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited with 2"):
        ExecutorProcess("nope", tmp_path).start()


def test_a_port_in_use_exits_1(tmp_path: Path) -> None:
    with running_executor("noop", tmp_path) as first:
        second = ExecutorProcess("noop", tmp_path)
        second.addr = first.addr
        try:
            assert second.spawn().wait(20) == 1
        finally:
            second.stop()
    assert "cannot listen" in second.log()
