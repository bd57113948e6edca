"""Server interceptors: domain errors -> gRPC status, metrics per method and code, auth hook.

Servicers never call ``abort``: they raise ``domain.errors`` and the error interceptor turns each
into the right status with an ``ErrorInfo``. Unexpected exceptions become INTERNAL with a generic
message (the traceback is logged, never sent).
"""

from __future__ import annotations

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


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], exc: BaseException, method: str
) -> None:
    if isinstance(exc, errors.AutomationsError):
        status = api_errors.to_rpc_status(exc)
    else:
        logger.exception("unexpected error in %s", method)
        status = api_errors.to_rpc_status(
            errors.AutomationsError("internal error; see the engine's log", reason="INTERNAL")
        )
    await context.abort_with_status(rpc_status.to_status(status))


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
                    return await inner_uu(request, context)
                except Exception as exc:
                    await _abort(context, exc, method)
                finally:
                    metrics.GRPC_LATENCY.labels(method).observe(time.perf_counter() - start)
                    metrics.GRPC_REQUESTS.labels(method, _code_of(context)).inc()

            return grpc.unary_unary_rpc_method_handler(
                unary_unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            async def stream_stream(
                requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                start = time.perf_counter()
                try:
                    async for response in inner_ss(requests, context):
                        yield response
                except Exception as exc:
                    await _abort(context, exc, method)
                finally:
                    metrics.GRPC_LATENCY.labels(method).observe(time.perf_counter() - start)
                    metrics.GRPC_REQUESTS.labels(method, _code_of(context)).inc()

            return grpc.stream_stream_rpc_method_handler(
                stream_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
