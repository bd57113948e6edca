"""The composition root: builds the store, engine, writer and gRPC server, and runs them.

Start-up order: migrate the database, start the writer (it loads automations and trigger state),
open the gRPC port with the health service NOT_SERVING, then flip health to SERVING. SIGTERM flips
health to NOT_SERVING, refuses new events, lets in-flight RPCs finish (grace period), commits what is
queued and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from automations import config, logs, supervisor
from automations.actions import dispatcher as dispatcher_
from automations.actions import executor_client, retry
from automations.api import automation_service, event_service, interceptors
from automations.pipeline import outbox, service, writer
from automations.store import event_log
from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
)

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""The largest gRPC message accepted (a batch of events)."""


async def serve(settings: config.Settings, *, ready: asyncio.Event | None = None) -> int:
    """Runs the engine until SIGTERM or SIGINT; returns the process exit code."""
    logs.configure(level=settings.log_level, json_lines=settings.log_json)
    backend = service.EngineBackend.from_settings(settings)
    the_writer = writer.Writer(
        backend,
        max_pending_events=settings.max_pending_events,
        max_group_events=settings.max_group_events,
    )
    bundled: supervisor.BundledExecutors | None = None
    routes: dict[str, str] = {}
    if not settings.no_executors:
        bundled = supervisor.BundledExecutors(
            supervisor.DEFAULT_BUNDLED,
            state_dir=supervisor.state_dir_for(settings.database_url, settings.executor_state_dir),
            log_json=settings.log_json,
        )
        routes = await bundled.start()
    routes = supervisor.merged_routes(routes, settings.executor_routes())
    logger.info("executor routes", extra={"routes": routes})
    dispatcher = dispatcher_.Dispatcher(
        outbox.OutboxGateway(the_writer, backend),
        executor_client.ExecutorClient(routes, timeout=settings.action_timeout_seconds),
        dispatcher_.DispatcherSettings(
            concurrency=settings.dispatch_concurrency,
            retry=retry.RetryPolicy(
                max_attempts=settings.action_max_attempts,
                max_age=settings.action_max_age_seconds,
                base_delay=settings.action_retry_base_seconds,
                max_delay=settings.action_retry_max_seconds,
            ),
        ),
    )
    backend.attach_dispatcher(dispatcher.submit, dispatcher.accepts_fresh)
    server = grpc.aio.server(
        interceptors=[interceptors.ErrorAndMetricsInterceptor()],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    event_service_pb2_grpc.add_EventServiceServicer_to_server(
        event_service.EventService(the_writer, backend.list_events, prepare=event_log.to_row),
        server,
    )
    automation_service_pb2_grpc.add_AutomationServiceServicer_to_server(
        automation_service.AutomationService(
            the_writer, backend, on_redrive=dispatcher.wake_poller
        ),
        server,
    )
    services = (
        event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
        automation_service_pb2.DESCRIPTOR.services_by_name["AutomationService"].full_name,
    )
    reflection.enable_server_reflection(
        (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    for name in ("", *services):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    server.add_insecure_port(settings.grpc_addr)
    await server.start()
    logger.info("gRPC listening", extra={"grpc_addr": settings.grpc_addr})

    await asyncio.to_thread(the_writer.start)
    await dispatcher.start()
    if settings.metrics_addr:
        host, port = settings.metrics_addr.rsplit(":", 1)
        start_http_server(int(port), addr=host)
        logger.info("metrics at /metrics", extra={"metrics_addr": settings.metrics_addr})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for name in ("", *services):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("engine serving", extra={"database": backend.database_description})
    if ready is not None:
        ready.set()
    await stop.wait()

    logger.info("draining: refusing new events, finishing in-flight batches")
    await health_servicer.enter_graceful_shutdown()
    the_writer.stop_accepting()
    await server.stop(settings.shutdown_grace_seconds)
    await dispatcher.stop()
    await asyncio.to_thread(the_writer.stop)
    if bundled is not None:
        await bundled.stop()
    backend.dispose()
    logger.info("stopped")
    return 0


def run(settings: config.Settings) -> int:
    """Runs ``serve`` in a fresh event loop."""
    return asyncio.run(serve(settings))


__all__: list[Any] = ["run", "serve"]
