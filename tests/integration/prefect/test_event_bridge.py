"""``automations bridge prefect`` against a real Prefect server and a real flow run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import automations
from automations.v1 import event_service_pb2, event_service_pb2_grpc
from tests.integration.engine_process import EngineProcess
from tests.integration.prefect.prefect_server import PrefectApi, PrefectServer

pytestmark = pytest.mark.timeout(120)

PREFECT_EVENTS = True
"""This module's Prefect server runs its services (event persister and stream: the websocket's
backfill and live events come from them)."""

T = TypeVar("T")

FLOW = """
from prefect import flow
from prefect.runtime import flow_run


@flow
def hello():
    return flow_run.id


print(hello())
"""


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def run_in_prefect_venv(server: PrefectServer, script: str, workdir: Path) -> str:
    """Runs a Python script with the Prefect venv's interpreter against ``server``; its stdout."""
    path = workdir / "flow_script.py"
    path.write_text(script)
    env = {**server.env(), "PREFECT_API_URL": server.api_url}
    done = subprocess.run(
        [str(server.prefect.parent / "python"), str(path)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path / "engine-home")
    proc.workdir.mkdir()
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


class Bridge:
    """``automations bridge prefect`` as a child process, logging to a file."""

    def __init__(self, prefect: PrefectServer, engine: EngineProcess, workdir: Path) -> None:
        self.log_path = workdir / "bridge.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "automations.cli.main",
                    "bridge",
                    "prefect",
                    "--prefect-api-url",
                    prefect.api_url,
                    "--server",
                    engine.grpc_addr,
                    "--event",
                    "prefect.flow-run.*",
                    "--flush-ms",
                    "100",
                ],
                stdout=log,
                stderr=log,
                env=env,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_connected(self, timeout: float = 30.0) -> None:
        def connected() -> bool:
            assert self.proc.poll() is None, f"the bridge exited:\n{self.log()}"
            return "connected to ws://" in self.log()

        eventually(connected, f"the bridge to connect:\n{self.log()}", timeout)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def engine_events(engine: EngineProcess, resource_id: str) -> dict[str, str]:
    """The engine's logged events about ``resource_id``: name -> event id."""
    with engine.channel() as channel:
        stub = event_service_pb2_grpc.EventServiceStub(channel)
        reply = stub.ListEvents(
            event_service_pb2.ListEventsRequest(resource_ids=[resource_id], page_size=1000)
        )
    return {e.event: e.id for e in reply.events}


def automation_from_the_trigger_template(engine: EngineProcess) -> dict[str, Any]:
    """``automations trigger flow-run-state --state Completed ... | automations automation create -``."""
    cli = [sys.executable, "-m", "automations.cli.main"]
    template = subprocess.run(
        [
            *cli,
            "trigger",
            "flow-run-state",
            "--state",
            "Completed",
            "--automation",
            "flow run completed",
            "--action",
            '{"type": "do-nothing"}',
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert json.loads(template)["trigger"] == {
        "type": "event",
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "match_related": {},
        "after": [],
        "expect": ["prefect.flow-run.Completed"],
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0,
    }
    created = subprocess.run(
        [*cli, "automation", "create", "-", "--server", engine.grpc_addr, "--json"],
        input=template,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    automation: dict[str, Any] = json.loads(created)
    return automation


def test_a_real_flow_run_reaches_the_engine_through_the_bridge_and_fires_an_automation_once(
    prefect_server: PrefectServer, prefect_api: PrefectApi, engine: EngineProcess, tmp_path: Path
) -> None:
    automation = automation_from_the_trigger_template(engine)
    bridge = Bridge(prefect_server, engine, tmp_path)
    try:
        bridge.wait_connected()
        flow_run_id = run_in_prefect_venv(prefect_server, FLOW, tmp_path)
        resource_id = f"prefect.flow-run.{flow_run_id}"

        bridged = eventually(
            lambda: (
                found
                if {"prefect.flow-run.Running", "prefect.flow-run.Completed"}
                <= (found := engine_events(engine, resource_id)).keys()
                else None
            ),
            f"the flow run's events in the engine:\n{bridge.log()}",
        )
        for name in ("prefect.flow-run.Running", "prefect.flow-run.Completed"):
            assert bridged[name] == prefect_api.events_of(resource_id, name)["id"]

        with automations.Client(engine.grpc_addr) as client:
            firings = eventually(
                lambda: client.list_firings(automation["id"]), "the automation to fire"
            )
            time.sleep(1.0)  # a second firing (e.g. a re-sent Completed) would show by now
            firings = client.list_firings(automation["id"])
        assert len(firings) == 1
        assert firings[0]["triggering_event_id"] == bridged["prefect.flow-run.Completed"]
        assert firings[0]["triggering_labels"] == {"prefect.resource.id": resource_id}

        assert bridge.terminate() == 0
        log = bridge.log()
        assert log.count("connected to ws://") == 1
        assert "stopped after publishing" in log
    finally:
        bridge.kill()
