"""``automations firings get`` and ``automations invocations get|redrive`` against a real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import automations
from tests.integration.engine_process import EngineProcess

AUTOMATION = {
    "name": "job failed",
    "trigger": {"type": "event", "expect": ["job.failed"], "threshold": 1, "within": 0},
    "actions": [{"type": "do-nothing"}],
}


def cli(engine: EngineProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUTOMATIONS_SERVER": engine.grpc_addr}
    return subprocess.run(
        [sys.executable, "-m", "automations.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_one_firing_and_one_invocation_are_shown_by_id(engine: EngineProcess) -> None:
    with automations.Client(engine.grpc_addr) as client:
        created = client.create_automation(AUTOMATION, automation_id="job-failed")
        client.publish(
            [{"event": "job.failed", "resource": {"prefect.resource.id": "job.1"}}],
            raise_on_rejected=True,
        )
        (firing,) = client.list_firings(created["id"])
        (invocation,) = client.list_invocations(created["id"])

    shown = ok_json(cli(engine, "firings", "get", firing["id"], "--json"))
    assert shown == firing
    assert shown["triggering_event"]["resource"] == {"prefect.resource.id": "job.1"}
    assert (
        ok_json(cli(engine, "firings", "get", firing["id"], "--automation", "job-failed", "--json"))
        == firing
    )
    got = ok_json(cli(engine, "invocations", "get", invocation["id"], "--json"))
    assert got == invocation and got["status"] == "succeeded"
    text = cli(engine, "invocations", "get", invocation["id"], "--automation", "job-failed")
    assert text.returncode == 0 and "do-nothing  succeeded" in text.stdout

    refused = cli(engine, "invocations", "redrive", invocation["id"])
    assert refused.returncode == 1
    assert refused.stderr.startswith("automations: FAILED_PRECONDITION")
    missing = cli(engine, "firings", "get", str(uuid.uuid4()))
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    elsewhere = cli(engine, "invocations", "get", invocation["id"], "--automation", "other")
    assert elsewhere.returncode == 1 and "NOT_FOUND" in elsewhere.stderr
    malformed = cli(engine, "firings", "get", firing["id"], "--automation", "Job")
    assert malformed.returncode == 1 and "INVALID_RESOURCE_NAME" in malformed.stderr
