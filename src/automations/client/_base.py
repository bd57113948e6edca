"""What the client's groups of calls share: the stubs, the deadline and turning errors into CallError."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import grpc

from automations.client import _errors
from automations.v1 import automation_service_pb2_grpc, event_service_pb2_grpc

T = TypeVar("T")


class Calls:
    """The state every group of calls (``_events``, ``_automations``, ``_history``) uses.

    ``automations.Client`` sets these attributes in its constructor.
    """

    timeout: float
    """Deadline of each call, in seconds."""
    _events: event_service_pb2_grpc.EventServiceStub
    _automations: automation_service_pb2_grpc.AutomationServiceStub

    @staticmethod
    def _call(fn: Callable[[], T]) -> T:
        """Runs one call, raising ``CallError`` (with reason and field) if it fails."""
        try:
            return fn()
        except grpc.RpcError as exc:
            raise _errors.CallError.from_rpc_error(exc) from None
