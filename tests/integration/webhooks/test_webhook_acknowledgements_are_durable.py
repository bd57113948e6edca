"""A 204 means committed: kill -9 while requests are in flight loses none that were answered 204."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from pathlib import Path

import httpx

import automations
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until


def test_every_request_answered_204_survives_kill_9(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    try:
        with automations.Client(engine.grpc_addr) as api:
            hook = api.create_webhook(
                "durable",
                '{"event": "durable.hit", "id": "{{ body.id }}", '
                '"resource": {"prefect.resource.id": "durable.{{ body.id }}"}}',
            )
        acknowledged: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def send(client: httpx.Client) -> None:
            while not stop.is_set():
                event_id = str(uuid.uuid4())
                try:
                    reply = client.post(hook["url"], json={"id": event_id})
                except httpx.HTTPError:
                    return  # the engine is gone
                if reply.status_code == 204:
                    with lock:
                        acknowledged.append(event_id)

        with (
            httpx.Client(timeout=10) as client,
            concurrent.futures.ThreadPoolExecutor(8) as pool,
        ):
            senders = [pool.submit(send, client) for _ in range(8)]
            wait_until(lambda: len(acknowledged) >= 300, what="300 acknowledged requests")
            engine.kill9()  # requests still in flight
            stop.set()
            for sender in senders:
                sender.result()
        with lock:
            answered = set(acknowledged)
        engine.start()
        with automations.Client(engine.grpc_addr) as api:
            stored = {e["id"] for e in api.list_events(names=["durable.hit"])}
        assert len(answered) >= 300
        assert answered <= stored, f"{len(answered - stored)} acknowledged events were lost"
    finally:
        engine.stop()
