"""Server interceptors: domain errors -> gRPC status, metrics per method and code, bearer token.

Servicers never call ``abort``: they raise ``domain.errors`` and the error interceptor turns each
into the right status with an ``ErrorInfo``. Unexpected exceptions become INTERNAL with a generic
message (the traceback is logged, never sent).

A refused call's request must not outlive it: the status is built inside the ``except`` block and
the call aborted after it, so the abort's exception carries no chain back to the failed handler's
frames (and their ``request``). Chained, a refused 60 MB request lived on until the next full
garbage collection, and bursts of them held gigabytes.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from automations import metrics
from automations.api import errors as api_errors
from automations.domain import errors

logger = logging.getLogger(__name__)


def _method_name(full: str) -> str:
    return full.rsplit("/", 1)[-1] if full else "unknown"


def _status_of(exc: BaseException, method: str) -> grpc.Status:
    """The status a failed call answers with (call it inside the ``except`` block)."""
    if isinstance(exc, errors.AutomationsError):
        status = api_errors.to_rpc_status(exc)
    else:
        logger.exception("unexpected error in %s", method)
        status = api_errors.to_rpc_status(
            errors.AutomationsError("internal error; see the engine's log", reason="INTERNAL")
        )
    return rpc_status.to_status(status)


class _Malformed:
    """A request message that could not be parsed, in place of the request."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """A request deserializer that hands over a :class:`_Malformed` instead of raising.

    gRPC answers a request its deserializer cannot parse with UNKNOWN and logs a traceback for
    each one, so any client could flood the log; the handler answers it INVALID_ARGUMENT instead.
    """

    def parse(data: bytes) -> Any:
        if deserialize is None:
            return data
        try:
            return deserialize(data)
        except Exception as exc:
            return _Malformed(type(exc).__name__)

    return parse


def _malformed(request: _Malformed) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        "",
        f"the request is not a valid protobuf message of this method ({request.error}); note "
        "that protobuf parses at most 100 nested messages, about 32 levels of a payload's "
        "objects and lists",
        reason="MALFORMED_REQUEST",
    )


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Malformed):
            raise _malformed(request)
        yield request


def _code_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    if code is None:
        return "OK"
    return code.name if isinstance(code, grpc.StatusCode) else str(code)


class ErrorAndMetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps domain errors to statuses and records request counts and latency per method."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wraps the handler of every unary and streaming method."""
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = _method_name(handler_call_details.method)
        if method in ("Check", "Watch", "ServerReflectionInfo"):
            return handler

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                start = time.perf_counter()
                try:
                    try:
                        if isinstance(request, _Malformed):
                            raise _malformed(request)
                        return await inner_uu(request, context)
                    except Exception as exc:
                        failure = _status_of(exc, method)
                    del request  # see the module docstring
                    await context.abort_with_status(failure)
                finally:
                    metrics.GRPC_LATENCY.labels(method).observe(time.perf_counter() - start)
                    metrics.GRPC_REQUESTS.labels(method, _code_of(context)).inc()

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            async def stream_stream(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                start = time.perf_counter()
                try:
                    failure = None
                    try:
                        async for response in inner_ss(_checked(requests), context):
                            yield response
                    except Exception as exc:
                        failure = _status_of(exc, method)
                    if failure is not None:
                        await context.abort_with_status(failure)
                finally:
                    metrics.GRPC_LATENCY.labels(method).observe(time.perf_counter() - start)
                    metrics.GRPC_REQUESTS.labels(method, _code_of(context)).inc()

            return grpc.stream_stream_rpc_method_handler(
                stream_stream,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler


API_SERVICE_PREFIX = "/automations.v1."
"""Methods of these services need the token; health and reflection stay open."""


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses automations.v1 calls without ``authorization: Bearer <token>`` (UNAUTHENTICATED).

    Health and reflection are left open so that load balancers and grpcurl discovery work
    without the token. A refused call raises :class:`errors.Unauthenticated` from its handler,
    so place this interceptor after :class:`ErrorAndMetricsInterceptor`: the refusal then gets
    its ``ErrorInfo`` reason (``API_TOKEN_MISSING`` or ``API_TOKEN_INVALID``) and is counted.

    Args:
        token: The expected token (compared in constant time).
    """

    def __init__(self, token: str) -> None:
        self._expected = token.encode()

    def _refusal(self, metadata: Any) -> errors.Unauthenticated | None:
        values = [value for key, value in metadata or () if key == "authorization"]
        if not values:
            return errors.Unauthenticated(
                "This engine requires an API token: send the metadata "
                "'authorization: Bearer <token>' (automations --token, AUTOMATIONS_API_TOKEN)",
                reason="API_TOKEN_MISSING",
            )
        given = values[0] if isinstance(values[0], bytes) else str(values[0]).encode()
        scheme, _, credentials = given.strip().partition(b" ")
        # the scheme is case-insensitive (RFC 7235, section 2.1); the token is compared in
        # constant time
        if scheme.lower() != b"bearer" or not hmac.compare_digest(
            credentials.strip(), self._expected
        ):
            return errors.Unauthenticated(
                "The API token is not valid (authorization: Bearer <token>)",
                reason="API_TOKEN_INVALID",
            )
        return None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Passes an authorized (or unprotected) call on; answers any other with the refusal."""
        handler = await continuation(handler_call_details)
        if handler is None or not str(handler_call_details.method).startswith(API_SERVICE_PREFIX):
            return handler
        refusal = self._refusal(handler_call_details.invocation_metadata)
        if refusal is None:
            return handler
        if handler.stream_stream is not None:

            async def refuse_stream(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                nothing: Any
                for nothing in ():  # an async generator that answers nothing, then refuses
                    yield nothing
                raise refusal

            # no request is read: only what HTTP/2 flow control lets in is ever buffered
            return grpc.stream_stream_rpc_method_handler(
                refuse_stream,
                request_deserializer=_ignored,
                response_serializer=handler.response_serializer,
            )

        async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            raise refusal

        # a unary request arrives whole before any handler runs; it is dropped unparsed
        return grpc.unary_unary_rpc_method_handler(
            refuse,
            request_deserializer=_ignored,
            response_serializer=handler.response_serializer,
        )


def _ignored(_data: bytes) -> None:
    """The request deserializer of a refused call: the bytes are dropped, never parsed."""
    return None
