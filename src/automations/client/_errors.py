"""The errors ``automations.Client`` raises (the tree is drawn in ``automations.client``)."""

from __future__ import annotations

import grpc
from grpc_status import rpc_status

from automations.domain import errors


class ClientError(Exception):
    """Base class of the errors ``Client`` raises."""


class CallError(ClientError):
    """A call failed, or a request was refused before it was sent.

    A request refused by the client-side checks has ``code`` INVALID_ARGUMENT, the server's
    answer to it.

    Attributes:
        code: The gRPC status code.
        message: The status message.
        reason: The ``google.rpc.ErrorInfo`` reason (UPPER_SNAKE), or "".
        field: The offending field's path (Prefect's JSON names, e.g.
            ``trigger.triggers[1].within``), or "".
    """

    def __init__(
        self, code: grpc.StatusCode, message: str, *, reason: str = "", field: str = ""
    ) -> None:
        text = f"{code.name}: {message}"
        if reason:
            text += f" (reason {reason})"
        super().__init__(text)
        self.code = code
        self.message = message
        self.reason = reason
        self.field = field

    @classmethod
    def from_rpc_error(cls, exc: grpc.RpcError) -> CallError:
        """Returns the error for a failed call, with its ErrorInfo reason and BadRequest field."""
        from google.rpc import error_details_pb2

        reason = field = ""
        status = rpc_status.from_call(exc)
        if status is not None:
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                bad = error_details_pb2.BadRequest()
                if detail.Unpack(info):
                    reason = info.reason
                elif detail.Unpack(bad) and bad.field_violations:
                    field = bad.field_violations[0].field
        return cls(exc.code(), exc.details() or "", reason=reason, field=field)

    @classmethod
    def from_invalid(cls, exc: errors.InvalidArgument) -> CallError:
        """Returns the error for a request refused by the client-side checks."""
        return cls(grpc.StatusCode.INVALID_ARGUMENT, str(exc), reason=exc.reason, field=exc.field)
