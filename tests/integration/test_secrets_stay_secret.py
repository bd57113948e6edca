"""Credentials in actions' targets reach neither the logs nor the event log, nor the executors."""

from __future__ import annotations

import http.server
import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import automations
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

SECRETS = ("hunter2", "querysecret", "pathsecretpathsecret", "apprisepw", "headersecret")
API_TOKEN = "engine-api-token-never-shared"


class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_action_credentials_are_masked_everywhere_the_engine_writes(
    tmp_path: Path, receiver: int
) -> None:
    engine = EngineProcess(
        tmp_path, bundled_executors=True, env={"AUTOMATIONS_API_TOKEN": API_TOKEN}
    ).start()
    os.environ["AUTOMATIONS_API_TOKEN"] = API_TOKEN  # for the client
    try:
        with automations.Client(engine.grpc_addr, token=API_TOKEN) as client:
            created = client.create_automation(
                {
                    "name": "with credentials",
                    "trigger": {"type": "event", "expect": ["go"], "threshold": 1},
                    "actions": [
                        {
                            "type": "call-webhook",
                            "url": f"http://alice:hunter2@127.0.0.1:{receiver}/hook/"
                            "pathsecretpathsecret?token=querysecret",
                            "headers": {"Authorization": "Bearer headersecret"},
                            "payload": "{{ event.id }}",
                        },
                        {
                            "type": "send-notification",
                            "url": f"json://bob:apprisepw@127.0.0.1:{receiver}/notify",
                            "body": "hello",
                        },
                    ],
                }
            )
            client.publish(
                [
                    {
                        "id": str(uuid.uuid4()),
                        "event": "go",
                        "resource": {"prefect.resource.id": "r"},
                    }
                ],
                raise_on_rejected=True,
            )
            wait_until(
                lambda: (
                    len(client.list_invocations(created["id"], statuses=["succeeded", "failed"]))
                    == 2
                ),
                timeout=60,
                what="both actions to finish",
            )
            lifecycle = client.list_events(names=["prefect.automation.*"])
        stored = json.dumps(lifecycle)
        assert "prefect.automation.action.executed" in stored
        for secret in SECRETS:
            assert secret not in stored, secret
            assert secret not in engine.log(), secret
        assert engine.proc is not None
        executors = children_of(engine.proc.pid)
        assert executors, "the bundled executors run as the engine's children"
        for pid in executors:
            environment = Path(f"/proc/{pid}/environ").read_bytes()
            assert API_TOKEN.encode() not in environment
    finally:
        os.environ.pop("AUTOMATIONS_API_TOKEN", None)
        engine.stop()
