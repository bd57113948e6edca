from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from automations.executors.errors import ERROR_DOMAIN, ActionError, to_status


def test_an_action_error_becomes_a_status_with_error_info() -> None:
    error = ActionError(
        grpc.StatusCode.UNAVAILABLE,
        "The webhook answered 503",
        "WEBHOOK_RETRYABLE_STATUS",
        {"status_code": "503"},
    )
    status = to_status(error)
    assert status.code is grpc.StatusCode.UNAVAILABLE
    assert status.details == "The webhook answered 503"
    [(key, value)] = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    proto = status_pb2.Status.FromString(value)
    info = error_details_pb2.ErrorInfo()
    assert proto.details[0].Unpack(info)
    assert (info.domain, info.reason, dict(info.metadata)) == (
        ERROR_DOMAIN,
        "WEBHOOK_RETRYABLE_STATUS",
        {"status_code": "503"},
    )


def test_only_transient_codes_are_retryable() -> None:
    assert ActionError(grpc.StatusCode.DEADLINE_EXCEEDED, "m", "R").retryable
    assert not ActionError(grpc.StatusCode.PERMISSION_DENIED, "m", "R").retryable


def test_a_long_reason_is_cut_to_63_characters() -> None:
    assert len(ActionError(grpc.StatusCode.INTERNAL, "m", "X" * 100).reason) == 63
