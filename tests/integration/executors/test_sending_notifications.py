"""The real ``automations executor notify`` process sending through Apprise to a local receiver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import json_format

from tests.integration.engine_process import free_port
from tests.integration.executors.executor_process import (
    ExecutorProcess,
    Receiver,
    failure,
    request,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def notify_executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExecutorProcess]:
    proc = ExecutorProcess("notify", tmp_path_factory.mktemp("notify"), args=("--timeout", "5"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def send(
    executor: ExecutorProcess, params: dict[str, object], key: str | None = None
) -> dict[str, object]:
    with executor.stub() as stub:
        reply = stub.ExecuteAction(
            request("send-notification", key or str(uuid.uuid4()), params), timeout=10
        )
    return json_format.MessageToDict(reply.result)


def send_fails(executor: ExecutorProcess, params: dict[str, object]) -> grpc.RpcError:
    with executor.stub() as stub, pytest.raises(grpc.RpcError) as info:
        stub.ExecuteAction(request("send-notification", str(uuid.uuid4()), params), timeout=10)
    return info.value


def test_the_receiver_gets_the_subject_and_body(
    notify_executor: ExecutorProcess, receiver: Receiver
) -> None:
    url = f"json://127.0.0.1:{receiver.port}/notify"
    result = send(notify_executor, {"url": url, "subject": "Flow failed", "body": "etl crashed"})
    assert result == {"notified": 1.0}
    [received] = receiver.requests
    assert received.path == "/notify"
    assert received.json()["title"] == "Flow failed"
    assert received.json()["message"] == "etl crashed"
    assert url not in str(result)


def test_the_default_subject_is_prefects(
    notify_executor: ExecutorProcess, receiver: Receiver
) -> None:
    send(notify_executor, {"urls": [f"json://127.0.0.1:{receiver.port}/a"], "body": "b"})
    assert receiver.requests[0].json()["title"] == "Prefect automated notification"


def test_several_urls_are_each_notified_once_per_key(
    notify_executor: ExecutorProcess, receiver: Receiver
) -> None:
    urls = [f"json://127.0.0.1:{receiver.port}/a", f"json://127.0.0.1:{receiver.port}/b"]
    key = str(uuid.uuid4())
    assert send(notify_executor, {"urls": urls, "body": "b"}, key) == {"notified": 2.0}
    assert send(notify_executor, {"urls": urls, "body": "b"}, key) == {"notified": 2.0}
    assert sorted(r.path for r in receiver.requests) == ["/a", "/b"]


def test_a_closed_port_is_unavailable_with_the_notification_log(
    notify_executor: ExecutorProcess,
) -> None:
    error = failure(
        send_fails(notify_executor, {"url": f"json://127.0.0.1:{free_port()}/x", "body": "b"})
    )
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert (error.message, error.reason) == ("Notification failed", "NOTIFICATION_FAILED")
    assert error.metadata["notification_log"]
    assert len(error.metadata["notification_log"]) <= 2000


def test_a_missing_url_or_body_is_invalid(notify_executor: ExecutorProcess) -> None:
    no_url = failure(send_fails(notify_executor, {"body": "b"}))
    assert (no_url.code, no_url.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "NOTIFICATION_URL_MISSING",
    )
    no_body = failure(send_fails(notify_executor, {"url": "json://127.0.0.1:1/x"}))
    assert (no_body.code, no_body.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "NOTIFICATION_BODY_MISSING",
    )


def test_an_url_apprise_cannot_parse_is_invalid_and_not_echoed(
    notify_executor: ExecutorProcess,
) -> None:
    secret = "nosuchservice://token-abc123"
    error = failure(send_fails(notify_executor, {"url": secret, "body": "b"}))
    assert (error.code, error.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "NOTIFICATION_URL_INVALID",
    )
    assert "token-abc123" not in error.message
