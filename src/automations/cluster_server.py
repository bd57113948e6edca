"""The composition root of cluster mode: one replica (``automations serve --cluster``).

Start-up: PostgreSQL only (``cluster.creation.require_postgresql``), the engine lock taken
shared (``store.engine_lock``: replicas hold it together, a single-node engine is refused),
migrate, bound stalled transactions to the lease (``fencing``), create or read the cluster row
(the partition count is fixed at creation), connect to NATS and create or check the streams,
join the members, load every enabled automation, open the gRPC port (health NOT_SERVING), then
start the dispatcher and the replica's ownership loop (``cluster.replica``) and report SERVING.

Health says SERVING while PostgreSQL and NATS answer, whether or not the replica owns partitions:
ingest (``cluster.cluster_ingest``) needs only the log, and CRUD and reads only PostgreSQL. Every
replica serves the event, automation and webhook services, and ``/hooks/<slug>`` on
``http_addr`` (the single-node front process, its events published as ingest publishes them,
``cluster.cluster_webhooks``). SIGTERM: health NOT_SERVING, the webhook front drained (its
requests in flight published), new events refused, in-flight calls finished, then the partitions
handed over (pumps stop, relay flushed, dispatcher drained, leases released) and the member
leaves; exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from automations import config, logs, process_tuning, server
from automations.api import automation_service, event_service, webhook_service
from automations.api import simulation_pool as simulation_pool
from automations.cluster import (
    cluster_ingest,
    cluster_outbox,
    cluster_webhooks,
    creation,
    fencing,
    leases,
    log,
    log_streams,
    membership,
    partitioned,
    relay,
    replica,
    replica_backend,
)
from automations.domain import metric_json
from automations.pipeline import queries, webhook_changes, webhook_queries, writer
from automations.store import database as database_
from automations.store import engine_lock
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


def open_database(settings: config.Settings) -> tuple[database_.Database, int]:
    """The cluster's database, migrated, and its partition count (created if it is the first).

    Raises:
        errors.InvalidArgument: ``database_url`` is not PostgreSQL (``CLUSTER_NEEDS_POSTGRESQL``).
        errors.FailedPrecondition: The cluster has another partition count, or a single-node
            engine holds the database (``DATABASE_IN_USE``, naming it).
    """
    database = database_.Database(settings.database_url)
    try:
        creation.require_postgresql(database)
        # shared with the other replicas; refused while a single-node engine holds the database
        holder = engine_lock.holder_description(settings.grpc_addr, what="automations replica")
        lock = engine_lock.acquire(database, holder=holder, shared=True)
        database.on_dispose(lock.release)
        # before any connection of the writer engine exists: each one gets the bound
        fencing.bound_stalled_transactions(database.writer, settings.cluster_lease_seconds)
        database.migrate()
        with database.write() as conn:
            info = creation.create_or_read(conn, settings.cluster_partitions)
    except BaseException:
        database.dispose()
        raise
    return database, info.partition_count


async def connect_log(settings: config.Settings, what: str) -> log.JetStreamLog:
    """A connection to the cluster's log (one for publishing, one per kind of reader)."""
    return await log.JetStreamLog.connect(
        settings.nats_servers(),
        log_streams.LogSettings(
            prefix=settings.cluster_stream_prefix, replicas=settings.cluster_stream_replicas
        ),
        name=f"automations {settings.grpc_addr} {what}",
    )


async def serve(settings: config.Settings, *, ready: asyncio.Event | None = None) -> int:
    """Runs one replica until SIGTERM or SIGINT; returns the process exit code."""
    logs.configure(level=settings.log_level, json_lines=settings.log_json)
    metric_json.minimum_seconds = settings.metric_minimum_seconds
    database, partition_count = open_database(settings)
    logs_opened: list[log.JetStreamLog] = []
    try:
        for what in ("publisher", "raw readers", "forward readers"):
            logs_opened.append(await connect_log(settings, what))
        publisher, raw_log, fwd_log = logs_opened
        await publisher.ensure_streams()
        return await _serve(settings, database, partition_count, publisher, raw_log, fwd_log, ready)
    finally:
        for opened in logs_opened:
            with contextlib.suppress(Exception):
                await opened.close()
        database.dispose()


async def _serve(
    settings: config.Settings,
    database: database_.Database,
    partition_count: int,
    publisher: log.JetStreamLog,
    raw_log: log.JetStreamLog,
    fwd_log: log.JetStreamLog,
    ready: asyncio.Event | None,
) -> int:
    ingest = cluster_ingest.ClusterIngest(publisher, database, partition_count)
    hooks = _webhook_endpoint(settings, database, ingest)  # a port in use stops it here
    member = await asyncio.to_thread(membership.join, database, grpc_addr=settings.grpc_addr)
    logger.info(
        "joined the cluster",
        extra={"member_id": member.id, "partitions": partition_count},
    )
    from automations.engine.rete import runtime

    engine = partitioned.PartitionedEngine(partition_count, runtime.ReteMatcher(isolate=True))
    backend = replica_backend.ClusterBackend(
        database,
        member.id,
        engine,
        retention_seconds=settings.event_retention_seconds,
        max_chain_depth=settings.max_chain_depth,
        max_cascade_firings=settings.max_cascade_firings,
        invocation_lease=settings.action_timeout_seconds * 2 + 30.0,
    )
    the_writer = writer.Writer(backend, group_seconds=settings.group_commit_seconds)
    relayer = relay.Relay(database, publisher, lambda: backend.owned_partitions)
    reads = queries.Queries(database)
    bundled, routes = await server.start_executors(settings)
    dispatcher = server.build_dispatcher(
        settings, cluster_outbox.Gateway(the_writer, backend.outbox, relayer.wake), routes
    )
    backend.attach_dispatcher(dispatcher.submit, dispatcher.capacity)
    grpc_server = server.grpc_server(settings)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    event_service_pb2_grpc.add_EventServiceServicer_to_server(
        event_service.EventService(ingest, reads.list_events), grpc_server
    )
    simulations = simulation_pool.SimulationPool.from_settings(settings)
    automation_service_pb2_grpc.add_AutomationServiceServicer_to_server(
        automation_service.AutomationService(
            the_writer, reads, on_redrive=dispatcher.wake_poller, simulations=simulations
        ),
        grpc_server,
    )
    webhook_service_pb2_grpc.add_WebhookServiceServicer_to_server(
        webhook_service.WebhookService(
            the_writer,
            webhook_queries.WebhookQueries(database),
            base_url=settings.webhook_url_base(),
            on_change=hooks.directory.refresh if hooks else None,
            flush_deliveries=hooks.history.flush if hooks else None,
        ),
        grpc_server,
    )
    services = (
        event_service_pb2.DESCRIPTOR.services_by_name["EventService"].full_name,
        automation_service_pb2.DESCRIPTOR.services_by_name["AutomationService"].full_name,
        webhook_service_pb2.DESCRIPTOR.services_by_name["WebhookService"].full_name,
    )
    reflection.enable_server_reflection(
        (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server
    )

    async def set_health(serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *services):
            await health_servicer.set(name, status)

    await set_health(False)
    await server.listen(settings, grpc_server)
    await asyncio.to_thread(the_writer.start)

    async def rejoin() -> membership.Membership:
        return await asyncio.to_thread(
            membership.join, database, grpc_addr=settings.grpc_addr, member_id=member.id
        )

    the_replica = replica.Replica(
        member,
        the_writer,
        backend,
        raw_log,
        fwd_log,
        relayer,
        leases.LeaseTiming(
            lease=settings.cluster_lease_seconds,
            renew_every=settings.cluster_renew_seconds,
            probe_every=settings.cluster_probe_seconds,
        ),
        rejoin,
    )
    tuning = process_tuning.Tuning(
        switch_interval=settings.gil_switch_interval_seconds,
        gc=settings.gc_tuning,
        memory_trim_seconds=settings.memory_trim_seconds,
    )
    loop = asyncio.get_running_loop()

    def check() -> None:  # in a thread: PostgreSQL, then the log (on the event loop)
        database.ping()
        asyncio.run_coroutine_threadsafe(
            publisher.last_sequence(log_streams.Stage.RAW, 0), loop
        ).result(timeout=server.DATABASE_PING_TIMEOUT_SECONDS)

    with process_tuning.tuned(tuning):
        await dispatcher.start()
        the_replica.start()
        if hooks is not None:
            await hooks.start()
        if settings.metrics_addr:
            host, port = settings.metrics_addr.rsplit(":", 1)
            start_http_server(int(port), addr=host)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await set_health(True)
        watch = asyncio.create_task(
            server.follow_database(
                check,
                set_health,
                interval=settings.database_check_seconds,
            )
        )
        logger.info("replica serving", extra={"member_id": member.id})
        if ready is not None:
            ready.set()
        await stop.wait()

        logger.info("draining: refusing new events, handing partitions over")
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await health_servicer.enter_graceful_shutdown()
        if hooks is not None:  # its requests in flight are published before ingest stops
            await hooks.stop()
        ingest.stop_accepting()
        await grpc_server.stop(settings.shutdown_grace_seconds)
        await the_replica.stop(before_release=dispatcher.stop)
        await asyncio.to_thread(the_writer.stop)
    await simulations.close()
    if bundled is not None:
        await bundled.stop()
    logger.info("stopped")
    return 0


def _webhook_endpoint(
    settings: config.Settings, database: database_.Database, ingest: cluster_ingest.ClusterIngest
) -> endpoint_.WebhookEndpoint | None:
    """``/hooks/<slug>`` on ``http_addr`` (None when empty): events published as ingest does.

    A request's events are acknowledged (204) once JetStream stored them; the delivery history
    is written by this replica directly (not on its writer thread); the directory follows the
    cluster's change counter (``cluster_webhooks``).
    """
    keep = settings.webhook_deliveries_kept
    return server.webhook_endpoint(
        settings,
        load_all=webhook_queries.WebhookQueries(database).all_webhooks,
        submit=lane.from_async(cluster_webhooks.publisher(ingest), asyncio.get_running_loop()),
        write_deliveries=lambda batch: asyncio.to_thread(
            webhook_changes.record_deliveries, database, batch, keep
        ),
        changes_counted=lambda: cluster_webhooks.changes_counted(database),
    )


def run(settings: config.Settings) -> int:
    """Runs ``serve`` in a fresh event loop."""
    return asyncio.run(serve(settings))
