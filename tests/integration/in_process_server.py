"""The engine's gRPC API served in the test's own event loop, on a free port.

The real servicers, interceptors, writer, dispatcher and EngineBackend (rete matcher) over a
SQLite file, wired as ``automations.server.serve`` wires them, minus what belongs to the process:
signal handlers, the metrics port, logging set-up, process tuning and the bundled executors (no
executor is routed, as with ``--no-executors``). Starting it takes a few milliseconds instead of a
child process's second or two, so tests that only need to call the API use this; tests about the
process itself (kill -9, signals, the CLI, ports, TLS, health) keep ``engine_process``.

Everything runs on the test's event loop: call the server with the ``grpc.aio`` stubs given here,
never with blocking stubs (the loop that would answer them is the one they block).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from automations.api import automation_service, event_service, interceptors
from automations.dispatch import dispatcher as dispatcher_
from automations.dispatch import executor_client
from automations.pipeline import backend as backend_
from automations.pipeline import outbox, queries, writer
from automations.store import database, event_log
from automations.v1 import automation_service_pb2_grpc, event_service_pb2_grpc


@dataclasses.dataclass(frozen=True)
class InProcessServer:
    """A serving engine API and aio stubs on one channel to it."""

    address: str
    """``127.0.0.1:PORT``."""
    database_url: str
    events: event_service_pb2_grpc.EventServiceStub
    automations: automation_service_pb2_grpc.AutomationServiceStub
    backend: backend_.EngineBackend
    writer: writer.Writer[backend_.EngineBackend]


@contextlib.asynccontextmanager
async def serving(
    workdir: Path,
    *,
    max_pending_events: int = 100_000,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[InProcessServer]:
    """Serves the engine API on ``127.0.0.1:0`` over ``workdir/automations.db`` until exit.

    Args:
        workdir: Where the SQLite file goes.
        max_pending_events: The writer's backpressure bound.
        clock: The wall clock of the backend, writer and servicers.
    """
    url = f"sqlite:///{workdir / 'automations.db'}"
    db = database.Database(url)
    db.migrate()
    backend = backend_.EngineBackend(db, engine_factory=backend_.rete_engine, clock=clock)
    reads = queries.Queries(db)
    the_writer = writer.Writer(backend, max_pending_events=max_pending_events, clock=clock)
    dispatcher = dispatcher_.Dispatcher(
        outbox.OutboxGateway(the_writer, reads),
        executor_client.ExecutorClient({}),
        dispatcher_.DispatcherSettings(),
        clock=clock,
    )
    backend.attach_dispatcher(dispatcher.submit, dispatcher.capacity)
    server = grpc.aio.server(interceptors=[interceptors.ErrorAndMetricsInterceptor()])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    event_service_pb2_grpc.add_EventServiceServicer_to_server(
        event_service.EventService(
            the_writer, reads.list_events, clock=clock, prepare=event_log.to_row
        ),
        server,
    )
    automation_service_pb2_grpc.add_AutomationServiceServicer_to_server(
        automation_service.AutomationService(
            the_writer, reads, clock=clock, on_redrive=dispatcher.wake_poller
        ),
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    started = False
    try:
        await asyncio.to_thread(the_writer.start)
        started = True
        await dispatcher.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        address = f"127.0.0.1:{port}"
        async with grpc.aio.insecure_channel(address) as channel:
            yield InProcessServer(
                address=address,
                database_url=url,
                events=event_service_pb2_grpc.EventServiceStub(channel),
                automations=automation_service_pb2_grpc.AutomationServiceStub(channel),
                backend=backend,
                writer=the_writer,
            )
    finally:
        the_writer.stop_accepting()
        await server.stop(5)
        if started:
            await dispatcher.stop()
            await asyncio.to_thread(the_writer.stop)
        backend.dispose()
