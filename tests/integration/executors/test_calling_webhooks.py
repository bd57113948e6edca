"""The real ``automations executor webhook`` process calling a real local HTTP receiver."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from tests.integration.executors.executor_process import (
    ExecutorProcess,
    Receiver,
    Reply,
    failure,
    request,
    running_executor,
)

pytestmark = pytest.mark.timeout(60)


def key() -> str:
    return f"automation a1, action 0, invocation {uuid.uuid4()}"


def call(
    executor: ExecutorProcess, idempotency_key: str, params: dict[str, object]
) -> dict[str, object]:
    with executor.stub() as stub:
        reply = stub.ExecuteAction(request("call-webhook", idempotency_key, params), timeout=10)
    return json_format.MessageToDict(reply.result)


def call_fails(
    executor: ExecutorProcess, idempotency_key: str, params: dict[str, object]
) -> grpc.RpcError:
    with executor.stub() as stub, pytest.raises(grpc.RpcError) as info:
        stub.ExecuteAction(request("call-webhook", idempotency_key, params), timeout=10)
    return info.value


def test_the_request_carries_the_payload_headers_and_idempotency_key(
    webhook_executor: ExecutorProcess, receiver: Receiver
) -> None:
    receiver.reply = Reply(
        status=201,
        body=b"x" * 1500,
        headers={"X-Request-Id": "r1", "Set-Cookie": "s=1", "X-Forwarded-For": "10.0.0.1"},
    )
    k = key()
    result = call(
        webhook_executor,
        k,
        {
            "url": f"{receiver.url}/hook?a=1",
            "method": "PUT",
            "headers": {"X-Token": "t"},
            "payload": "hello",
        },
    )
    [received] = receiver.requests
    assert (received.method, received.path, received.body) == ("PUT", "/hook?a=1", b"hello")
    assert received.headers["idempotency-key"] == k
    assert received.headers["x-token"] == "t"
    assert result["status_code"] == 201
    assert result["response_body"] == "x" * 1000
    headers = result["response_headers"]
    assert isinstance(headers, dict)
    assert headers["x-request-id"] == "r1"
    assert "set-cookie" not in headers and "x-forwarded-for" not in headers


def test_a_dict_payload_is_sent_as_indented_json_with_post_by_default(
    webhook_executor: ExecutorProcess, receiver: Receiver
) -> None:
    call(webhook_executor, key(), {"url": receiver.url, "payload": {"n": 2, "flow": "etl"}})
    [received] = receiver.requests
    assert received.method == "POST"
    assert received.body == b'{\n  "flow": "etl",\n  "n": 2\n}'


def test_the_same_key_twice_calls_the_receiver_once_and_returns_the_same_result(
    webhook_executor: ExecutorProcess, receiver: Receiver
) -> None:
    k = key()
    params = {"url": receiver.url, "payload": "once"}
    first = call(webhook_executor, k, params)
    receiver.reply = Reply(status=202, body=b"changed")
    second = call(webhook_executor, k, params)
    assert receiver.count() == 1
    assert first == second


def test_a_restarted_executor_still_remembers_the_key(tmp_path: Path, receiver: Receiver) -> None:
    k = key()
    params = {"url": receiver.url, "payload": "once"}
    with running_executor("webhook", tmp_path) as executor:
        first = call(executor, k, params)
        assert executor.terminate() == 0
    with running_executor("webhook", tmp_path) as executor:
        assert call(executor, k, params) == first
    assert receiver.count() == 1


def test_a_503_is_retryable_and_the_retry_calls_again(
    webhook_executor: ExecutorProcess, receiver: Receiver
) -> None:
    receiver.reply = Reply(status=503, body=b"maintenance", headers={"Retry-After": "7"})
    k = key()
    error = failure(call_fails(webhook_executor, k, {"url": receiver.url}))
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert (error.reason, error.domain) == ("WEBHOOK_RETRYABLE_STATUS", "automations.dev")
    assert error.metadata == {
        "status_code": "503",
        "response_body": "maintenance",
        "retry_after": "7",
    }
    receiver.reply = Reply(status=200)
    assert call(webhook_executor, k, {"url": receiver.url})["status_code"] == 200
    assert receiver.count() == 2
    assert {r.headers["idempotency-key"] for r in receiver.requests} == {k}


def test_a_404_is_recorded_not_failed(
    webhook_executor: ExecutorProcess, receiver: Receiver
) -> None:
    receiver.reply = Reply(status=404, body=b"no such hook")
    result = call(webhook_executor, key(), {"url": receiver.url})
    assert result["status_code"] == 404
    assert result["response_body"] == "no such hook"


def test_the_cloud_metadata_address_is_refused(webhook_executor: ExecutorProcess) -> None:
    error = failure(
        call_fails(webhook_executor, key(), {"url": "http://169.254.169.254/latest/meta-data/"})
    )
    assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert error.reason == "WEBHOOK_URL_FORBIDDEN"


def test_a_receiver_slower_than_the_timeout_is_a_deadline_exceeded(
    webhook_executor: ExecutorProcess, receiver: Receiver
) -> None:
    receiver.reply = Reply(delay=3.0)
    error = failure(call_fails(webhook_executor, key(), {"url": receiver.url}))
    assert error.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.reason == "WEBHOOK_TIMEOUT"


def test_a_closed_port_is_unavailable(webhook_executor: ExecutorProcess) -> None:
    from tests.integration.engine_process import free_port

    error = failure(
        call_fails(webhook_executor, key(), {"url": f"http://127.0.0.1:{free_port()}/"})
    )
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert error.reason == "WEBHOOK_CONNECTION_FAILED"


def test_a_missing_url_is_a_final_invalid_argument(webhook_executor: ExecutorProcess) -> None:
    error = failure(call_fails(webhook_executor, key(), {"payload": "x"}))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert (error.reason, error.metadata) == ("WEBHOOK_URL_MISSING", {"field": "parameters.url"})


def test_requests_without_a_key_or_of_an_unknown_type_are_invalid(
    webhook_executor: ExecutorProcess,
) -> None:
    with webhook_executor.stub() as stub:
        with pytest.raises(grpc.RpcError) as missing:
            stub.ExecuteAction(request("call-webhook", "", {"url": "http://x"}), timeout=5)
        with pytest.raises(grpc.RpcError) as unknown:
            stub.ExecuteAction(request("send-notification", key(), {}), timeout=5)
    assert failure(missing.value).metadata == {"field": "idempotency_key"}
    assert failure(unknown.value).reason == "ACTION_TYPE_UNSUPPORTED"
    assert unknown.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_private_networks_are_refused_when_asked(tmp_path: Path, receiver: Receiver) -> None:
    with running_executor("webhook", tmp_path, args=("--deny-private-networks",)) as executor:
        error = failure(call_fails(executor, key(), {"url": receiver.url}))
    assert error.code is grpc.StatusCode.PERMISSION_DENIED
    assert receiver.count() == 0


def test_hundreds_of_concurrent_calls_to_one_slow_host_all_succeed(
    webhook_executor: ExecutorProcess, receiver: Receiver
) -> None:
    # The engine keeps up to 1,024 invocations in flight; with httpx's default pool of 100
    # connections, the calls beyond it queued for a connection and timed out: three rounds of
    # 1 s are more than the 2.5 s timeout, one round leaves 1.5 s for a busy machine.
    receiver.reply = Reply(delay=1.0)
    params = {"url": receiver.url, "timeout": 2.5}
    with webhook_executor.stub() as stub:
        calls = [
            stub.ExecuteAction.future(request("call-webhook", key(), params), timeout=60)
            for _ in range(300)
        ]
        codes = [json_format.MessageToDict(c.result().result)["status_code"] for c in calls]
    assert codes == [200] * 300
    assert receiver.count() == 300
