"""The composition root: builds the store, engine, writer and gRPC server, and runs them.

Start-up order: migrate the database, start the writer (it loads automations and trigger state),
open the gRPC port with the health service NOT_SERVING, then flip health to SERVING. SIGTERM flips
health to NOT_SERVING, refuses new events, lets in-flight RPCs finish (grace period), commits what is
queued and exits 0. While serving, the database is pinged every ``database_check_seconds``: health
reports NOT_SERVING while it does not answer and SERVING again once it does.

Transport security (all optional): TLS on the gRPC port (``tls_cert_file``/``tls_key_file``), client
certificates required and verified against ``tls_client_ca_file`` (mTLS), a static bearer token on
every automations.v1 call (``api_token``; health and reflection stay open), and TLS to executors
(``executor_tls_ca_file``, with a client certificate for mTLS). The bundled executors are started on
127.0.0.1 in plaintext: they are this process's children on the same host, reached over loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from automations import config, logs, metrics, process_tuning, transport
from automations.api import automation_service, event_service, interceptors, webhook_service
from automations.api import simulation_pool as simulation_pool
from automations.dispatch import dispatcher as dispatcher_
from automations.dispatch import executor_client, prefect_context, retry
from automations.domain import errors, webhooks
from automations.executors import supervisor
from automations.pipeline import backend as backend_
from automations.pipeline import outbox, queries, webhook_changes, webhook_queries, writer
from automations.store import event_log
from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
)
from automations.webhooks import endpoint as endpoint_
from automations.webhooks import lane

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_MS = 10_000
"""A connection that has not completed its HTTP/2 (and TLS) handshake by then is closed: without
it, connections that never sent the HTTP/2 preface were held open, each with its descriptor."""

DATABASE_PING_TIMEOUT_SECONDS = 5.0
"""A database ping that takes longer than this counts as a failure."""


def server_credentials(settings: config.Settings) -> grpc.ServerCredentials | None:
    """Returns the gRPC port's TLS credentials (mTLS with a client CA), or None for plaintext."""
    if not settings.tls_cert_file:
        return None
    client_ca = transport.read_pem(settings.tls_client_ca_file)
    return grpc.ssl_server_credentials(
        [(transport.read_pem(settings.tls_key_file), transport.read_pem(settings.tls_cert_file))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def executor_credentials(settings: config.Settings) -> grpc.ChannelCredentials | None:
    """Returns the TLS credentials for calling executors, or None for plaintext."""
    if not settings.executor_tls_ca_file:
        return None
    return transport.channel_credentials(
        root_certificates=transport.read_pem(settings.executor_tls_ca_file),
        private_key=transport.read_pem(settings.executor_tls_key_file),
        certificate_chain=transport.read_pem(settings.executor_tls_cert_file),
    )


async def follow_database(
    ping: Callable[[], None],
    set_serving: Callable[[bool], Awaitable[None]],
    *,
    interval: float,
    timeout: float = DATABASE_PING_TIMEOUT_SECONDS,
) -> None:
    """Pings the database every ``interval`` seconds and reports each change of its health.

    A ping runs in a thread; one that has not answered after ``timeout`` counts as a failure, and
    no second ping starts while it hangs. Runs until cancelled.

    Args:
        ping: Raises when the database does not answer (``Database.ping``).
        set_serving: Called with False when the database stops answering, True when it answers
            again (only on changes).
        interval: Seconds between two pings.
        timeout: Seconds after which a ping that has not answered is a failure.
    """
    healthy = True
    pending: asyncio.Future[None] | None = None
    while True:
        await asyncio.sleep(interval)
        if pending is None or pending.done():
            if pending is not None:
                pending.exception()  # a late answer to a ping that timed out: consumed
            pending = asyncio.ensure_future(asyncio.to_thread(ping))
        done, _ = await asyncio.wait({pending}, timeout=timeout)
        error: BaseException | None = None
        if not done:
            error = TimeoutError(f"no answer in {timeout}s")
        elif pending.exception() is not None:
            error = pending.exception()
        if error is not None and healthy:
            cause = getattr(error.__cause__, "orig", None) or error.__cause__
            detail = f"{error}: {str(cause).strip().splitlines()[0]}" if cause else str(error)
            logger.error("database unreachable: health NOT_SERVING", extra={"error": detail})
            healthy = False
            await set_serving(False)
        elif error is None and not healthy:
            logger.info("database reachable again: health SERVING")
            healthy = True
            await set_serving(True)


async def start_executors(
    settings: config.Settings,
) -> tuple[supervisor.BundledExecutors | None, dict[str, str]]:
    """Starts the bundled executors (unless ``no_executors``); returns them and every route."""
    bundled: supervisor.BundledExecutors | None = None
    routes: dict[str, str] = {}
    if not settings.no_executors:
        names = list(supervisor.DEFAULT_BUNDLED)
        extra: dict[str, list[str]] = {}
        if settings.prefect_api_url:
            names.append("prefect")
            extra["prefect"] = ["--prefect-api-url", settings.prefect_api_url]
        if settings.executor_deny_private_networks:
            for name in ("webhook", "notify"):
                extra.setdefault(name, []).append("--deny-private-networks")
        bundled = supervisor.BundledExecutors(
            names,
            state_dir=supervisor.state_dir_for(settings.database_url, settings.executor_state_dir),
            log_json=settings.log_json,
            extra_args=extra,
        )
        routes = await bundled.start()
    routes = supervisor.merged_routes(routes, settings.executor_routes())
    logger.info("executor routes", extra={"routes": routes})
    return bundled, routes


def build_dispatcher(
    settings: config.Settings, store: dispatcher_.OutboxStore, routes: dict[str, str]
) -> dispatcher_.Dispatcher:
    """The outbox dispatcher over ``store``, calling the executors at ``routes``."""
    return dispatcher_.Dispatcher(
        store,
        executor_client.ExecutorClient(
            routes,
            timeout=settings.action_timeout_seconds,
            credentials=executor_credentials(settings),
        ),
        dispatcher_.DispatcherSettings(
            concurrency=settings.dispatch_concurrency,
            retry=retry.RetryPolicy(
                max_attempts=settings.action_max_attempts,
                max_age=settings.action_max_age_seconds,
                base_delay=settings.action_retry_base_seconds,
                max_delay=settings.action_retry_max_seconds,
            ),
            ui_url=settings.prefect_ui_base(),
        ),
        prefect_objects=(
            prefect_context.PrefectObjects(settings.prefect_api_url)
            if settings.prefect_api_url
            else None
        ),
    )


def grpc_server(settings: config.Settings) -> grpc.aio.Server:
    """The gRPC server (no services yet): interceptors, message and concurrency limits."""
    server_interceptors: list[grpc.aio.ServerInterceptor] = [
        interceptors.ErrorAndMetricsInterceptor()
    ]
    if settings.api_token:
        server_interceptors.append(interceptors.BearerTokenInterceptor(settings.api_token))
    return grpc.aio.server(
        interceptors=server_interceptors,
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
        ],
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )


async def listen(settings: config.Settings, server: grpc.aio.Server) -> None:
    """Opens the gRPC port (TLS when configured) and starts serving."""
    credentials = server_credentials(settings)
    if credentials is None:
        server.add_insecure_port(settings.grpc_addr)
    else:
        server.add_secure_port(settings.grpc_addr, credentials)
    await server.start()
    logger.info(
        "gRPC listening",
        extra={
            "grpc_addr": settings.grpc_addr,
            "tls": "mtls" if settings.tls_client_ca_file else bool(credentials),
            "api_token": bool(settings.api_token),
        },
    )
    if settings.api_token and credentials is None:
        logger.warning("api_token without TLS: the token travels in the clear")


async def serve(settings: config.Settings, *, ready: asyncio.Event | None = None) -> int:
    """Runs the engine until SIGTERM or SIGINT; returns the process exit code."""
    logs.configure(level=settings.log_level, json_lines=settings.log_json)
    backend = backend_.EngineBackend.from_settings(settings)
    reads = queries.Queries(backend.database)
    the_writer = writer.Writer(
        backend,
        max_pending_events=settings.max_pending_events,
        max_group_events=settings.max_group_events,
        group_seconds=settings.group_commit_seconds,
    )
    metrics.PENDING_EVENTS.set_function(lambda: the_writer.pending_events)
    webhook_reads = webhook_queries.WebhookQueries(backend.database)
    keep = settings.webhook_deliveries_kept
    hooks = webhook_endpoint(
        settings,
        load_all=webhook_reads.all_webhooks,
        submit=the_writer.submit_replying,
        write_deliveries=lambda batch: the_writer.call(
            lambda backend: webhook_changes.record_deliveries(backend.database, batch, keep)
        ),
    )
    bundled, routes = await start_executors(settings)
    dispatcher = build_dispatcher(settings, outbox.OutboxGateway(the_writer, reads), routes)
    backend.attach_dispatcher(dispatcher.submit, dispatcher.capacity)
    server = grpc_server(settings)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    event_service_pb2_grpc.add_EventServiceServicer_to_server(
        event_service.EventService(the_writer, reads.list_events, prepare=event_log.to_row),
        server,
    )
    simulations = simulation_pool.SimulationPool.from_settings(settings)
    automation_service_pb2_grpc.add_AutomationServiceServicer_to_server(
        automation_service.AutomationService(
            the_writer, reads, on_redrive=dispatcher.wake_poller, simulations=simulations
        ),
        server,
    )
    webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(
        webhook_service.WebhookService(
            the_writer,
            webhook_reads,
            base_url=settings.webhook_url_base(),
            on_change=hooks.directory.refresh if hooks else None,
            flush_deliveries=hooks.history.flush if hooks else None,
        ),
        server,
    )
    services = (
        event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
        automation_service_pb2.DESCRIPTOR.services_by_name["AutomationService"].full_name,
        webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name,
    )
    reflection.enable_server_reflection(
        (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    for name in ("", *services):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await listen(settings, server)

    await asyncio.to_thread(the_writer.start)
    tuning = process_tuning.Tuning(
        switch_interval=settings.gil_switch_interval_seconds,
        gc=settings.gc_tuning,
        memory_trim_seconds=settings.memory_trim_seconds,
    )
    with process_tuning.tuned(tuning):
        await _serve_loaded(
            settings,
            server,
            health_servicer,
            services,
            backend,
            the_writer,
            dispatcher,
            hooks,
            ready,
        )
    await simulations.close()
    if bundled is not None:
        await bundled.stop()
    backend.dispose()
    logger.info("stopped")
    return 0


async def _serve_loaded(
    settings: config.Settings,
    server: grpc.aio.Server,
    health_servicer: health.aio.HealthServicer,
    services: tuple[str, ...],
    backend: backend_.EngineBackend,
    the_writer: writer.Writer[backend_.EngineBackend],
    dispatcher: dispatcher_.Dispatcher,
    hooks: endpoint_.WebhookEndpoint | None,
    ready: asyncio.Event | None,
) -> None:
    """Serves from the moment state is loaded until SIGTERM or SIGINT, then drains."""
    await dispatcher.start()
    if hooks is not None:
        await hooks.start()
    if settings.metrics_addr:
        host, port = settings.metrics_addr.rsplit(":", 1)
        start_http_server(int(port), addr=host)
        logger.info("metrics at /metrics", extra={"metrics_addr": settings.metrics_addr})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    # SERVING while the database answers and commits succeed: a full disk answers pings
    inputs = {"database": True, "commits": True}

    async def set_serving(serving: bool, *, what: str = "database") -> None:
        inputs[what] = serving
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if all(inputs.values())
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *services):
            await health_servicer.set(name, status)

    def commits_failing(failing: bool) -> None:  # on the writer thread
        if failing:
            logger.error("commits fail: health NOT_SERVING until a write succeeds")
        else:
            logger.info("commits succeed again: health follows the database")
        loop.call_soon_threadsafe(
            lambda: asyncio.ensure_future(set_serving(not failing, what="commits"))
        )

    def check_database() -> None:  # in a thread
        if the_writer.commits_failing:
            backend.database.probe_write()
            the_writer.commits_recovered()
        else:
            backend.database.ping()

    the_writer.on_commits_failing = commits_failing
    await set_serving(True)
    database_watch = asyncio.create_task(
        follow_database(check_database, set_serving, interval=settings.database_check_seconds)
    )
    logger.info("engine serving", extra={"database": backend.database_description})
    if ready is not None:
        ready.set()
    await stop.wait()

    logger.info("draining: refusing new events, finishing in-flight batches")
    if hooks is not None:  # its requests in flight commit before the writer stops taking events
        await hooks.stop()
    database_watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await database_watch
    await health_servicer.enter_graceful_shutdown()
    the_writer.stop_accepting()
    await server.stop(settings.shutdown_grace_seconds)
    await dispatcher.stop()
    await asyncio.to_thread(the_writer.stop)


def webhook_endpoint(
    settings: config.Settings,
    *,
    load_all: Callable[[], Sequence[webhooks.Webhook]],
    submit: lane.Submit,
    write_deliveries: Callable[[Sequence[webhooks.Delivery]], Awaitable[None]],
    changes_counted: Callable[[], int] | None = None,
) -> endpoint_.WebhookEndpoint | None:
    """Binds the webhook endpoint on ``http_addr`` (None when it is empty).

    Args:
        settings: The engine's settings.
        load_all: Reads every webhook.
        submit: Queues a request's events from the publish lane's thread; its reply comes once
            they are durable (``Writer.submit_replying``, or ``lane.from_async``).
        write_deliveries: Writes the delivery history.
        changes_counted: A counter of webhook changes (cluster mode), see ``endpoint``.

    Raises:
        errors.Unavailable: The address cannot be bound (e.g. in use).
    """
    if not settings.http_addr:
        return None
    try:
        return endpoint_.WebhookEndpoint(
            settings.http_addr,
            load_all=load_all,
            submit=submit,
            write_deliveries=write_deliveries,
            decode_row=event_log.from_row,
            deliveries_kept=settings.webhook_deliveries_kept,
            threads=settings.webhook_threads,
            processes=settings.webhook_process_count(),
            max_body_bytes=settings.webhook_max_body_bytes,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            log_level=settings.log_level,
            log_json=settings.log_json,
            memory_trim_seconds=settings.memory_trim_seconds,
            changes_counted=changes_counted,
        )
    except OSError as exc:
        raise errors.Unavailable(
            f"cannot serve webhooks on http_addr {settings.http_addr}: {exc.strerror or exc}"
        ) from None


def run(settings: config.Settings) -> int:
    """Runs ``serve`` in a fresh event loop."""
    return asyncio.run(serve(settings))


__all__: list[Any] = ["run", "serve"]
