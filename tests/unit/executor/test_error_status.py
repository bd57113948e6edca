from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from automations import executor


def test_an_action_error_becomes_a_status_with_error_info() -> None:
    error = executor.ActionError(
        grpc.StatusCode.UNAVAILABLE,
        "The webhook answered 503",
        "WEBHOOK_RETRYABLE_STATUS",
        {"status_code": "503"},
    )
    status = executor.to_status(error)
    assert status.code is grpc.StatusCode.UNAVAILABLE
    assert status.details == "The webhook answered 503"
    [(key, value)] = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    proto = status_pb2.Status.FromString(value)
    info = error_details_pb2.ErrorInfo()
    assert proto.details[0].Unpack(info)
    assert (info.domain, info.reason, dict(info.metadata)) == (
        executor.ERROR_DOMAIN,
        "WEBHOOK_RETRYABLE_STATUS",
        {"status_code": "503"},
    )


def test_only_transient_codes_are_retryable() -> None:
    assert executor.ActionError(grpc.StatusCode.DEADLINE_EXCEEDED, "m", "R").retryable
    assert not executor.ActionError(grpc.StatusCode.PERMISSION_DENIED, "m", "R").retryable


def test_a_long_reason_is_cut_to_63_characters() -> None:
    assert len(executor.ActionError(grpc.StatusCode.INTERNAL, "m", "X" * 100).reason) == 63
