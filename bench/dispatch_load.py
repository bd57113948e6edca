"""The load of ``bench.dispatch``: its automations, events on a steady schedule, and the ceiling.

The ceiling is bare grpc.aio ``ExecuteAction`` calls from one Python process to the noop executor:
what a dispatcher in Python could reach at best.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

import grpc

from automations.executor.v1 import executor_service_pb2, executor_service_pb2_grpc
from automations.v1 import (
    automation_service_pb2,
    automation_service_pb2_grpc,
    event_pb2,
    event_service_pb2,
    event_service_pb2_grpc,
)
from automations.wire import automations as wire_automations
from bench.dispatch_processes import ACTION_TYPE, cpu_seconds, noop_executor

LATENCY_EVENT = "bench.dispatch"
THROUGHPUT_EVENT = "bench.key"  # what ``bench.loadgen --distinct-keys`` sends


def create_automation(addr: str, event_name: str, actions: int) -> None:
    automation = {
        "name": f"bench-dispatch-{event_name}",
        "trigger": {
            "type": "event",
            "posture": "Reactive",
            "expect": [event_name],
            "threshold": 1,
            "within": 0,
        },
        "actions": [{"type": ACTION_TYPE} for _ in range(actions)],
    }
    with grpc.insecure_channel(addr) as channel:
        automation_service_pb2_grpc.AutomationServiceStub(channel).CreateAutomation(
            automation_service_pb2.CreateAutomationRequest(
                automation=wire_automations.automation_proto_from_prefect_json(automation)
            ),
            timeout=30,
        )


def publish_request(count: int) -> event_service_pb2.PublishEventsRequest:
    request = event_service_pb2.PublishEventsRequest()
    now = time.time()
    for _ in range(count):
        ev: event_pb2.Event = request.events.add()
        ev.id = str(uuid.uuid4())
        ev.event = LATENCY_EVENT
        ev.occurred.seconds = int(now)
        ev.occurred.nanos = int((now - int(now)) * 1e9)
        ev.resource.labels["prefect.resource.id"] = f"bench.dispatch.{ev.id}"
    return request


async def send_steady(addr: str, rate: float, batch: int, seconds: float) -> dict[str, Any]:
    """PublishEvents of ``batch`` events every ``batch / rate`` s, on schedule (not closed loop)."""
    interval = batch / rate
    batches = round(seconds / interval)
    acks: list[float] = []
    accepted = 0
    late = 0

    async with grpc.aio.insecure_channel(addr) as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)

        async def one(request: event_service_pb2.PublishEventsRequest) -> None:
            nonlocal accepted
            sent = time.perf_counter()
            reply = await stub.PublishEvents(request, timeout=30)
            acks.append(time.perf_counter() - sent)
            accepted += sum(
                1 for r in reply.results if r.status == event_service_pb2.EVENT_STATUS_ACCEPTED
            )

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        for i in range(batches):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -interval:
                late += 1
            task = asyncio.create_task(one(publish_request(batch)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        send_seconds = time.perf_counter() - start
        await asyncio.gather(*tasks)
    return {
        "sent": batches * batch,
        "accepted": accepted,
        "send_seconds": send_seconds,
        "sent_per_s": batches * batch / send_seconds,
        "late_batches": late,
        "ack_p50_ms": pct(acks, 0.5) * 1000,
        "ack_p99_ms": pct(acks, 0.99) * 1000,
    }


def ceiling(calls: int = 30_000, concurrency: int = 64) -> dict[str, Any]:
    """Raw grpc.aio ExecuteAction calls/s from one Python process to the noop executor process.

    The same kind of request the engine sends (parameters, automation, firing, triggering event),
    built once; ``concurrency`` tasks call in a loop. An upper bound for a dispatcher that makes
    one unary call per invocation from one event loop.
    """
    request = executor_service_pb2.ExecuteActionRequest(
        action_type=ACTION_TYPE, attempt=1, action_index=0, idempotency_key="warm-up"
    )
    request.parameters.update({})
    request.automation.name = f"automations/{uuid.uuid4()}"
    request.automation.uid = request.automation.name.split("/")[1]
    request.automation.display_name = "bench"
    request.firing.uid = str(uuid.uuid4())
    request.firing.trigger_id = str(uuid.uuid4())
    request.firing.fire_time.GetCurrentTime()
    request.triggering_event.id = str(uuid.uuid4())
    request.triggering_event.event = THROUGHPUT_EVENT
    request.triggering_event.occurred.GetCurrentTime()
    request.triggering_event.resource.labels["prefect.resource.id"] = "bench.key.1"

    async def drive(addr: str) -> float:
        async with grpc.aio.insecure_channel(addr) as channel:
            stub = executor_service_pb2_grpc.ExecutorServiceStub(channel)
            await stub.ExecuteAction(request, timeout=10)
            left = calls

            async def worker(i: int) -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    call = executor_service_pb2.ExecuteActionRequest()
                    call.CopyFrom(request)
                    call.idempotency_key = f"{i}-{left}"
                    await stub.ExecuteAction(call, timeout=10)

            start = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
            return time.perf_counter() - start

    with noop_executor() as (addr, _, pid):
        cpu0, server0 = time.process_time(), cpu_seconds(pid)
        seconds = asyncio.run(drive(addr))
        cpu, server = time.process_time() - cpu0, cpu_seconds(pid) - server0
    return {
        "calls": calls,
        "concurrency": concurrency,
        "calls_per_s": calls / seconds,
        "client_cpu_us_per_call": cpu / calls * 1e6,
        "executor_cpu_us_per_call": server / calls * 1e6,
    }


def pct(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]
