"""Maps the domain error tree to gRPC statuses with ``ErrorInfo`` (AIP-193) and ``BadRequest``."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from automations.domain import errors

ERROR_DOMAIN = "automations.dev"
"""The ``ErrorInfo.domain`` of every error this engine returns."""

MAX_MESSAGE_CHARS = 1000
"""The longest message (and field path) sent back: an error quoting a client's 60 MB value must
not send it back whole."""


def _short(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return f"{text[: MAX_MESSAGE_CHARS - 40]}... ({len(text)} characters in all)"


_CODES: tuple[tuple[type[errors.AutomationsError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
)


def status_code(exc: errors.AutomationsError) -> grpc.StatusCode:
    """The canonical code of a domain error."""
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INTERNAL


def to_rpc_status(exc: errors.AutomationsError) -> status_pb2.Status:
    """Builds the ``google.rpc.Status`` for ``exc``: code, message, ErrorInfo and field violations."""
    code = status_code(exc)
    info = error_details_pb2.ErrorInfo(reason=exc.reason[:63], domain=ERROR_DOMAIN)
    if isinstance(exc, errors.InvalidArgument) and exc.field:
        info.metadata["field"] = _short(exc.field)
    details = [info]
    if isinstance(exc, errors.InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=_short(exc.field),
                        description=_short(exc.description),
                        reason=exc.reason[:63],
                    )
                ]
            )
        )
    packed = []
    for detail in details:
        any_msg = any_pb2.Any()
        any_msg.Pack(detail)
        packed.append(any_msg)
    return status_pb2.Status(
        code=getattr(code_pb2, code.name), message=_short(exc.message), details=packed
    )
