"""Action failures and their gRPC form: a canonical code plus a ``google.rpc.ErrorInfo``.

A handler raises :class:`ActionError` for every expected failure; the harness turns it into the
call's status (AIP-193: ``ErrorInfo`` with domain ``automations.dev``, an UPPER_SNAKE reason and
string metadata). Whether the engine retries follows from the code alone (see
``executor_service.proto``): :data:`RETRYABLE_CODES` are retried, every other code is final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "automations.dev"
"""The ``ErrorInfo.domain`` of every error a bundled executor returns."""

RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        # a cancelled call may or may not have acted: the idempotency key makes a retry safe
        grpc.StatusCode.CANCELLED,
    }
)
"""The codes the engine retries; any other error code is a final failure."""

MAX_REASON_CHARS = 63
"""AIP-193 caps ``ErrorInfo.reason`` at 63 characters."""


class ActionError(Exception):
    """An action failed; carries the gRPC code and the ``ErrorInfo`` the engine records.

    Attributes:
        code: The canonical status code; :data:`RETRYABLE_CODES` make the engine retry.
        message: The status message (the ``reason`` of Prefect's ``action.failed`` event).
        reason: UPPER_SNAKE machine-readable reason, e.g. ``WEBHOOK_URL_MISSING``.
        metadata: String key/value context for the ``ErrorInfo`` (never secrets).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason[:MAX_REASON_CHARS]
        self.metadata: dict[str, str] = dict(metadata or {})

    @property
    def retryable(self) -> bool:
        """Whether the engine retries an invocation that failed with this error."""
        return self.code in RETRYABLE_CODES

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form, stored by the idempotency store for a final failure."""
        return {
            "code": self.code.name,
            "message": self.message,
            "reason": self.reason,
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActionError:
        """Rebuilds an error stored with :meth:`to_json`."""
        return cls(
            grpc.StatusCode[str(data["code"])],
            str(data["message"]),
            str(data["reason"]),
            {str(k): str(v) for k, v in dict(data.get("metadata") or {}).items()},
        )

    def __repr__(self) -> str:
        return f"ActionError({self.code.name}, {self.message!r}, reason={self.reason!r})"


def invalid_argument(field: str, message: str, reason: str = "INVALID_ARGUMENT") -> ActionError:
    """An INVALID_ARGUMENT error naming the offending request field or parameter."""
    return ActionError(grpc.StatusCode.INVALID_ARGUMENT, message, reason, {"field": field})


def to_status_proto(error: ActionError) -> status_pb2.Status:
    """The ``google.rpc.Status`` for ``error``: code, message and an ``ErrorInfo`` detail."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    return status_pb2.Status(
        code=getattr(code_pb2, error.code.name), message=error.message, details=[detail]
    )


def to_status(error: ActionError) -> grpc.Status:
    """The gRPC status (code, message and ``grpc-status-details-bin``) for ``error``."""
    status: grpc.Status = rpc_status.to_status(to_status_proto(error))
    return status
