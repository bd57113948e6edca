"""The webhook front processes: started with the engine, restarted if one dies, gone with the engine.

The engines here run two front processes (``AUTOMATIONS_WEBHOOK_PROCESSES=2``, the default on a
2-core machine), so that what holds for each of several is checked on any machine.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import signal
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import automations
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

TEMPLATE = (
    '{"event": "front.hit", "id": "{{ body.id }}", '
    '"resource": {"prefect.resource.id": "front.{{ body.id }}"}}'
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _metric(engine: EngineProcess, name: str) -> float:
    with urllib.request.urlopen(f"http://{engine.metrics_addr}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


FRONTS = {"AUTOMATIONS_WEBHOOK_PROCESSES": "2"}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    started = EngineProcess(tmp_path, env=FRONTS).start()
    yield started
    started.stop()


def _hook_url(engine: EngineProcess) -> str:
    with automations.Client(engine.grpc_addr) as api:
        return str(api.create_webhook("front", TEMPLATE)["url"])


def test_a_killed_front_is_started_again_and_serves_the_same_webhooks(
    engine: EngineProcess,
) -> None:
    url = _hook_url(engine)
    with httpx.Client(timeout=10) as http:
        assert http.post(url, json={"id": str(uuid.uuid4())}).status_code == 204
        fronts = engine.webhook_fronts()
        assert len(fronts) == 2
        front = fronts[0]
        os.kill(front, signal.SIGKILL)
        wait_until(
            lambda: (
                len([pid for pid in engine.webhook_fronts() if pid != front and _alive(pid)]) == 2
            ),
            what="a new front process beside the other",
        )
        assert fronts[1] in engine.webhook_fronts(), "the other front was left alone"
        # fresh connections, so that both fronts (the new one included) answer some
        event_ids = [str(uuid.uuid4()) for _ in range(16)]
        for event_id in event_ids:
            wait_until(functools.partial(_post_fresh_ok, url, event_id), what="a 204")
    with automations.Client(engine.grpc_addr) as api:
        assert set(event_ids) <= {e["id"] for e in api.list_events(names=["front.hit"])}
    assert "the webhook front process died" in engine.log()


def _post_fresh_ok(url: str, event_id: str) -> bool:
    try:
        with httpx.Client(timeout=10) as fresh:
            return fresh.post(url, json={"id": event_id}).status_code == 204
    except httpx.HTTPError:
        return False


def test_kill_9_of_the_engine_takes_the_front_and_frees_the_port(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path, env=FRONTS).start()
    try:
        fronts = engine.webhook_fronts()
        assert len(fronts) == 2
        engine.kill9()
        wait_until(lambda: not any(_alive(pid) for pid in fronts), what="the fronts to exit")
        engine.start()  # the same HTTP port
        assert len(engine.webhook_fronts()) == 2
        url = _hook_url(engine)
        with httpx.Client(timeout=10) as http:
            assert http.post(url, json={"id": str(uuid.uuid4())}).status_code == 204
    finally:
        engine.stop()


def test_sigterm_drains_the_front_every_204_committed_and_the_counts_relayed(
    tmp_path: Path,
) -> None:
    engine = EngineProcess(tmp_path, env=FRONTS).start()
    try:
        url = _hook_url(engine)
        acknowledged: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def send(http: httpx.Client) -> None:
            while not stop.is_set():
                event_id = str(uuid.uuid4())
                try:
                    reply = http.post(url, json={"id": event_id})
                except httpx.HTTPError:
                    return  # the front stopped taking requests
                if reply.status_code == 204:
                    with lock:
                        acknowledged.append(event_id)
                elif reply.status_code != 503:
                    raise AssertionError(f"{reply.status_code}: {reply.text}")

        with (
            httpx.Client(timeout=10) as http,
            concurrent.futures.ThreadPoolExecutor(4) as pool,
        ):
            senders = [pool.submit(send, http) for _ in range(4)]
            wait_until(lambda: len(acknowledged) >= 100, what="100 acknowledged requests")
            wait_until(
                lambda: (
                    _metric(engine, 'automations_webhook_requests_total{outcome="accepted"}') >= 100
                ),
                what="the front's counts on the engine's /metrics",
            )
            fronts = engine.webhook_fronts()
            assert engine.terminate() == 0
            stop.set()
            for sender in senders:
                sender.result()
        assert not any(_alive(pid) for pid in fronts)
        with lock:
            answered = set(acknowledged)
            last = acknowledged[-1]
        engine.start()
        with automations.Client(engine.grpc_addr) as api:
            stored = {e["id"] for e in api.list_events(names=["front.hit"])}
            hook_id = api.list_webhooks()[0]["id"]
            recorded = api.list_webhook_deliveries(hook_id)
        assert answered <= stored, f"{len(answered - stored)} acknowledged events were lost"
        # the history waiting in the front (written every second) was handed over on SIGTERM
        assert last in {event_id for d in recorded for event_id in d["event_ids"]}
    finally:
        engine.stop()
