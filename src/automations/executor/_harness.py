"""The harness every bundled executor runs in: an ``ExecutorService`` on a ``grpc.aio`` server.

An :class:`Executor` is a name, one handler per action type and an idempotency store. The harness
validates each request, routes it by ``action_type`` (an unknown type is INVALID_ARGUMENT),
deduplicates it on ``idempotency_key`` (:mod:`automations.executor._idempotency`), optionally
bounds the handler by the call's deadline (``Executor.bound_by_deadline``; by default an action
outlives a caller that gave up and its outcome answers the retry), turns
:class:`~automations.executor._errors.ActionError` into the call's status with an ``ErrorInfo``
and counts outcomes in Prometheus metrics.

:func:`serve` adds the health service (SERVING once started, NOT_SERVING while draining) and
reflection, and stops gracefully on SIGTERM or SIGINT: in-flight calls (and actions whose callers
went away) get a grace period, then the process exits 0. It serves TLS when given a certificate
and key (``ServeOptions.tls_cert_file``/``tls_key_file``; mTLS with ``tls_client_ca_file``): an
executor run on another host should, and the engine then calls it with ``executor_tls_ca_file``.
The engine starts its bundled executors in plaintext on 127.0.0.1 (loopback, same host).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from automations.executor import _metrics as metrics
from automations.executor import _parent as parent
from automations.executor._errors import ActionError, invalid_argument, to_status, to_status_proto
from automations.executor._idempotency import Deduplicator, IdempotencyStore, Record
from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc
from automations.v1 import event_pb2

logger = logging.getLogger(__name__)

SERVICE_NAME: str = executor_service_pb2.DESCRIPTOR.services_by_name["ExecutorService"].full_name
"""``automations.executor.v1.ExecutorService``."""

MAX_IDEMPOTENCY_KEY_CHARS = 200
"""The longest ``idempotency_key`` the protocol allows."""

DEADLINE_MARGIN_SECONDS = 0.25
"""A handler is stopped this long before the call's deadline, so that its answer still arrives."""

MAX_BATCH = 1000
"""The most invocations one ExecuteActions call may carry."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What a handler returns: the result object and any events the action produced."""

    result: Mapping[str, Any] = field(default_factory=dict)
    """JSON-able; recorded on the ``prefect.automation.action.executed`` event."""

    emitted_events: Sequence[event_pb2.Event] = ()
    """Events to publish into the engine (with ids derived from the idempotency key)."""


Request: TypeAlias = executor_service_pb2.ExecuteActionRequest
Handler: TypeAlias = Callable[[Request], Awaitable[ActionResult | Mapping[str, Any]]]
"""Carries out one action: returns its result (or an :class:`ActionResult`), raises ActionError."""


@dataclass(slots=True)
class Executor:
    """One bundled executor: its handlers per action type and where it remembers keys."""

    name: str
    """Used in logs and metric labels, e.g. ``webhook``."""

    handlers: Mapping[str, Handler]
    """The action types served, each with its handler."""

    store: IdempotencyStore
    """Where idempotency keys are kept."""

    bound_by_deadline: bool = False
    """Whether handlers are stopped shortly before the call's deadline (DEADLINE_EXCEEDED).

    Off by default: an action whose caller gave up (deadline, engine crash) runs on to its own
    timeout and its outcome is recorded under the idempotency key, so the engine's retry is
    answered from the record instead of repeating a side effect that may already have happened.
    """

    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Run once the server has stopped (e.g. to close an HTTP client)."""

    async def close(self) -> None:
        """Runs the ``on_close`` callbacks and closes the store."""
        for callback in self.on_close:
            await callback()
        self.store.close()


def _encode(outcome: ActionResult | Mapping[str, Any]) -> Record:
    if not isinstance(outcome, ActionResult):
        return {"result": dict(outcome)}
    record: Record = {"result": dict(outcome.result)}
    if outcome.emitted_events:
        record["events"] = [
            base64.b64encode(e.SerializeToString()).decode("ascii") for e in outcome.emitted_events
        ]
    return record


def _decode(record: Record) -> executor_service_pb2.ExecuteActionResponse:
    response = executor_service_pb2.ExecuteActionResponse()
    result = record.get("result")
    if result:
        response.result.update(result)
    for encoded in record.get("events", ()):
        response.emitted_events.add().ParseFromString(base64.b64decode(encoded))
    return response


def validate(request: Request) -> None:
    """Checks the request fields every executor relies on; raises INVALID_ARGUMENT naming one."""
    if not request.action_type:
        raise invalid_argument("action_type", "action_type is required", "ACTION_TYPE_MISSING")
    key = request.idempotency_key
    if not key:
        raise invalid_argument(
            "idempotency_key", "idempotency_key is required", "IDEMPOTENCY_KEY_MISSING"
        )
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or not (key.isascii() and key.isprintable()):
        raise invalid_argument(
            "idempotency_key",
            f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters",
            "IDEMPOTENCY_KEY_INVALID",
        )


class ExecutorServicer(executor_service_pb2_grpc.ExecutorServiceServicer):
    """``ExecutorService`` over an :class:`Executor`.

    Args:
        executor: The handlers and store to serve.
        record_metrics: Whether to count outcomes in the Prometheus metrics.
    """

    def __init__(self, executor: Executor, *, record_metrics: bool = True) -> None:
        self._executor = executor
        self._dedupe = Deduplicator(executor.store)
        self._record_metrics = record_metrics

    async def drain(self, timeout: float) -> None:
        """Waits for actions that still run after their callers went away (bounded)."""
        await self._dedupe.drain(timeout)

    async def ExecuteAction(  # noqa: N802 - the gRPC method name
        self, request: Request, context: grpc.aio.ServicerContext[Any, Any]
    ) -> executor_service_pb2.ExecuteActionResponse:
        """Carries out one invocation, at most once per ``idempotency_key``."""
        outcome = await self._run_one(request, context.time_remaining)
        if isinstance(outcome, ActionError):
            return await self._abort(context, outcome)
        return outcome

    async def ExecuteActions(  # noqa: N802 - the gRPC method name
        self,
        request: executor_service_pb2.ExecuteActionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> executor_service_pb2.ExecuteActionsResponse:
        """Carries out a batch of invocations concurrently; one status per invocation."""
        if len(request.requests) > MAX_BATCH:
            error = invalid_argument(
                "requests", f"at most {MAX_BATCH} invocations per call", "BATCH_TOO_LARGE"
            )
            status = to_status(error)
            await context.abort(status.code, status.details, status.trailing_metadata)
        outcomes = await asyncio.gather(
            *(self._run_one(item, context.time_remaining) for item in request.requests)
        )
        response = executor_service_pb2.ExecuteActionsResponse()
        for outcome in outcomes:
            result = response.results.add()
            if isinstance(outcome, ActionError):
                result.status.CopyFrom(to_status_proto(outcome))
            else:
                result.response.CopyFrom(outcome)
        return response

    async def _run_one(
        self, request: Request, time_remaining: Callable[[], float | None]
    ) -> executor_service_pb2.ExecuteActionResponse | ActionError:
        started = time.perf_counter()
        handler = self._executor.handlers.get(request.action_type)
        try:
            validate(request)
            if handler is None:
                raise invalid_argument(
                    "action_type",
                    f"This executor does not serve action type {request.action_type!r}",
                    "ACTION_TYPE_UNSUPPORTED",
                )
        except ActionError as error:
            self._record(request.action_type if handler else "", "failed", started)
            return error

        async def act() -> Record:
            assert handler is not None
            remaining = time_remaining() if self._executor.bound_by_deadline else None
            if remaining is None:
                return _encode(await handler(request))
            try:
                async with asyncio.timeout(max(remaining - DEADLINE_MARGIN_SECONDS, 0.0)):
                    return _encode(await handler(request))
            except TimeoutError:
                raise ActionError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "The action did not finish before the call's deadline",
                    "ACTION_DEADLINE_EXCEEDED",
                ) from None

        try:
            outcome, repeat = await self._dedupe.run(request.idempotency_key, act)
        except Exception:  # the idempotency store failed (e.g. disk full): retryable, not UNKNOWN
            logger.exception("idempotency store error", extra={"action_type": request.action_type})
            outcome, repeat = (
                ActionError(
                    grpc.StatusCode.INTERNAL,
                    "The executor could not record the invocation",
                    "IDEMPOTENCY_STORE_ERROR",
                ),
                False,
            )
        if isinstance(outcome, ActionError):
            if outcome.__cause__ is not None:
                logger.error(
                    "action failed unexpectedly",
                    exc_info=outcome.__cause__,
                    extra={"action_type": request.action_type},
                )
            label = "duplicate" if repeat else ("retryable" if outcome.retryable else "failed")
            self._record(request.action_type, label, started)
            return outcome
        self._record(request.action_type, "duplicate" if repeat else "ok", started)
        return _decode(outcome)

    def _record(self, action_type: str, outcome: str, started: float) -> None:
        if self._record_metrics:
            metrics.record(self._executor.name, action_type, outcome, time.perf_counter() - started)

    @staticmethod
    async def _abort(
        context: grpc.aio.ServicerContext[Any, Any], error: ActionError
    ) -> executor_service_pb2.ExecuteActionResponse:
        status = to_status(error)
        await context.abort(status.code, status.details, status.trailing_metadata)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How :func:`serve` runs an executor."""

    addr: str = "127.0.0.1:50061"
    """gRPC ``HOST:PORT`` to listen on (port 0 picks a free one, logged)."""

    metrics_addr: str | None = None
    """Prometheus ``HOST:PORT`` serving ``/metrics``; none when unset."""

    grace_seconds: float = 5.0
    """How long in-flight calls may run on after SIGTERM."""

    parent_pid: int | None = None
    """Stop gracefully when this process dies (``AUTOMATIONS_PARENT_PID``)."""

    tls_cert_file: str | None = None
    """PEM certificate chain: with ``tls_key_file``, serve TLS instead of plaintext."""

    tls_key_file: str | None = None
    """PEM private key of ``tls_cert_file``."""

    tls_client_ca_file: str | None = None
    """PEM CA bundle: callers must present a certificate it signed (mTLS); needs TLS."""


def server_credentials(options: ServeOptions) -> grpc.ServerCredentials | None:
    """Returns TLS credentials for ``options`` (mTLS with a client CA), or None for plaintext.

    Raises:
        ValueError: Only one of the certificate and the key is given, or a client CA without them.
        OSError: A file cannot be read.
    """
    if bool(options.tls_cert_file) != bool(options.tls_key_file):
        raise ValueError("--tls-cert and --tls-key must be given together")
    if not options.tls_cert_file or not options.tls_key_file:
        if options.tls_client_ca_file:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    with open(options.tls_key_file, "rb") as key, open(options.tls_cert_file, "rb") as cert:
        pair = (key.read(), cert.read())
    client_ca = None
    if options.tls_client_ca_file:
        with open(options.tls_client_ca_file, "rb") as ca:
            client_ca = ca.read()
    return grpc.ssl_server_credentials(
        [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


async def serve(
    executor: Executor, options: ServeOptions, *, ready: asyncio.Event | None = None
) -> int:
    """Serves ``executor`` until SIGTERM, SIGINT or the parent's death; returns the exit code."""
    # without SO_REUSEPORT a port already in use is an error, not a second silent listener
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = ExecutorServicer(executor, record_metrics=options.metrics_addr is not None)
    executor_service_pb2_grpc.add_ExecutorServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        credentials = server_credentials(options)
    except (ValueError, OSError) as exc:
        logger.error("cannot serve TLS: %s", exc)
        await executor.close()
        return 2
    try:
        if credentials is None:
            port = server.add_insecure_port(options.addr)
        else:
            port = server.add_secure_port(options.addr, credentials)
    except RuntimeError as exc:
        logger.error("cannot listen on %s: %s", options.addr, exc)
        await executor.close()
        return 1
    await server.start()
    host = options.addr.rsplit(":", 1)[0]
    if options.metrics_addr:
        metrics_host, metrics_port = options.metrics_addr.rsplit(":", 1)
        start_http_server(int(metrics_port), addr=metrics_host.strip("[]"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = (
        asyncio.create_task(parent.stop_when_gone(options.parent_pid, stop))
        if options.parent_pid
        else None
    )
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info(
        "executor %s listening on %s:%d%s (action types: %s)",
        executor.name,
        host,
        port,
        "" if credentials is None else " with TLS",
        ", ".join(sorted(executor.handlers)),
        extra={"executor": executor.name, "grpc_addr": f"{host}:{port}"},
    )
    if ready is not None:
        ready.set()
    await stop.wait()

    logger.info("executor %s draining", executor.name)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(options.grace_seconds)
    await servicer.drain(options.grace_seconds)  # actions whose callers went away
    if watcher is not None:
        watcher.cancel()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    await executor.close()
    logger.info("executor %s stopped", executor.name)
    return 0
