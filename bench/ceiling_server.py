"""The ceiling: an EventService that decodes each request, touches every field of every event
once and acks, without validation, storage or matching. What any engine must do at least.

Run: python -m bench.ceiling_server --addr 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from automations.v1 import event_service_pb2, event_service_pb2_grpc

ACCEPTED = event_service_pb2.EVENT_STATUS_ACCEPTED


def touch(events: Any) -> list[Any]:
    results = []
    for i, ev in enumerate(events):
        n = len(ev.id) + len(ev.event) + ev.occurred.seconds + ev.occurred.nanos + len(ev.follows)
        for key, value in ev.resource.labels.items():
            n += len(key) + len(value)
        for related in ev.related:
            for key, value in related.labels.items():
                n += len(key) + len(value)
        for key in ev.payload.fields:
            n += len(key)
        results.append(event_service_pb2.EventResult(index=i, event_id=ev.id, status=ACCEPTED))
    return results


class Ceiling(event_service_pb2_grpc.EventServiceServicer):
    async def PublishEvents(self, request: Any, context: Any) -> Any:  # noqa: N802
        return event_service_pb2.PublishEventsResponse(results=touch(request.events))

    async def StreamEvents(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:  # noqa: N802
        async for request in request_iterator:
            yield event_service_pb2.StreamEventsResponse(
                sequence=request.sequence,
                result=event_service_pb2.EventBatchResult(results=touch(request.events)),
            )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True)
    args = parser.parse_args()
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    event_service_pb2_grpc.add_EventServiceServicer_to_server(Ceiling(), server)
    server.add_insecure_port(args.addr)
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
