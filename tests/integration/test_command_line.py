"""The command line users rely on, against a real engine: the README's tour, exit codes, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

SCENARIOS = Path(__file__).resolve().parent.parent / "conformance" / "scenarios"


def cli(
    engine: EngineProcess | None, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if engine is not None:
        env["AUTOMATIONS_SERVER"] = engine.grpc_addr
    return subprocess.run(
        [sys.executable, "-m", "automations.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


AUTOMATION = {
    "name": "deployment failing repeatedly",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["prefect.flow-run.Failed"],
        "for_each": ["related:deployment:prefect.resource.id"],
        "threshold": 3,
        "within": 60,
    },
    "actions": [{"type": "do-nothing"}],
}


def event_line(i: int, **extra: Any) -> str:
    data = {
        "id": f"00000000-0000-0000-0000-00000000000{i}",
        "event": "prefect.flow-run.Failed",
        "resource": {"prefect.resource.id": f"prefect.flow-run.{i}"},
        "related": [
            {"prefect.resource.id": "prefect.deployment.etl", "prefect.resource.role": "deployment"}
        ],
    }
    data.update(extra)
    return json.dumps(data)


def test_the_readme_tour(engine: EngineProcess, tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(AUTOMATION))
    created = ok_json(cli(engine, "automation", "create", str(tmp_path / "a.json"), "--json"))
    assert created["name"] == AUTOMATION["name"] and created["id"]
    (tmp_path / "events.jsonl").write_text("\n".join(event_line(i) for i in (1, 2, 3)) + "\n")
    published = cli(engine, "events", "publish", str(tmp_path / "events.jsonl"))
    assert published.returncode == 0, published.stderr
    listed = ok_json(cli(engine, "events", "list", "--name", "prefect.flow-run.*", "--json"))
    assert len(listed) == 3
    fired = ok_json(cli(engine, "firings", "list", "--automation", created["id"], "--json"))
    assert [f["triggering_labels"] for f in fired] == [
        {"related:deployment:prefect.resource.id": "prefect.deployment.etl"}
    ]
    # the automation's own events, as Prefect names them, in the same log
    for name in ("created", "triggered", "action.triggered", "action.executed"):
        wait_until(
            lambda name=name: ok_json(
                cli(engine, "events", "list", "--name", f"prefect.automation.{name}", "--json")
            ),
            interval=0.1,
            what=f"prefect.automation.{name}",
        )
    (done,) = ok_json(cli(engine, "invocations", "list", "--automation", created["id"], "--json"))
    assert (done["action_type"], done["status"]) == ("do-nothing", "succeeded")
    got = ok_json(cli(engine, "automation", "get", created["id"], "--json"))
    assert got["trigger"]["within"] == 60 and got["trigger"]["threshold"] == 3


def test_automation_json_round_trips_through_update(engine: EngineProcess, tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(AUTOMATION))
    created = ok_json(cli(engine, "automation", "create", str(tmp_path / "a.json"), "--json"))
    changed = dict(created, description="edited")
    (tmp_path / "b.json").write_text(json.dumps(changed))
    updated = ok_json(
        cli(engine, "automation", "update", created["id"], str(tmp_path / "b.json"), "--json")
    )
    assert updated["description"] == "edited"
    assert updated["id"] == created["id"] and updated["created"] == created["created"]
    disabled = ok_json(cli(engine, "automation", "disable", created["id"], "--json"))
    assert disabled["enabled"] is False
    assert ok_json(cli(engine, "automation", "enable", created["id"], "--json"))["enabled"] is True
    assert len(ok_json(cli(engine, "automation", "list", "--json", "--limit", "5"))) == 1
    assert cli(engine, "automation", "delete", created["id"]).returncode == 0
    missing = cli(engine, "automation", "get", created["id"])
    assert missing.returncode != 0 and "NOT_FOUND" in missing.stderr


def test_publish_exits_non_zero_naming_the_rejected_events(engine: EngineProcess) -> None:
    lines = [
        event_line(1),
        json.dumps({"id": "bad-1", "event": "x", "resource": {}}),
        event_line(2),
    ]
    result = cli(engine, "events", "publish", "-", stdin="\n".join(lines))
    assert result.returncode != 0
    assert "bad-1" in result.stderr and "MISSING_RESOURCE_ID" in result.stderr
    assert len(ok_json(cli(engine, "events", "list", "--json"))) == 2


def test_list_limit_follows_pages(engine: EngineProcess) -> None:
    lines = [
        json.dumps({"event": "tick", "resource": {"prefect.resource.id": f"r{i}"}})
        for i in range(1200)
    ]
    assert cli(engine, "events", "publish", "-", stdin="\n".join(lines)).returncode == 0
    assert len(ok_json(cli(engine, "events", "list", "--json", "--limit", "1100"))) == 1100
    assert (
        len(ok_json(cli(engine, "events", "list", "--json", "--name", "tick", "--resource", "r7")))
        == 1
    )


def test_invalid_automation_file_is_refused_with_the_field(
    engine: EngineProcess, tmp_path: Path
) -> None:
    bad = dict(AUTOMATION, trigger=dict(AUTOMATION["trigger"], within="soon"))
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    result = cli(engine, "automation", "create", str(tmp_path / "bad.json"))
    assert result.returncode == 2
    assert "trigger.within" in result.stderr


def test_simulate_prints_the_firings_of_a_scenario() -> None:
    path = SCENARIOS / "reactive-tumbling-windows-continue-from-old-end.json"
    scenario = json.loads(path.read_text())
    result = ok_json(cli(None, "simulate", str(path)))
    assert result == {"firings": scenario["expect"]["firings"], "resolutions": []}


def test_simulate_prints_a_metric_scenarios_firings_and_resolutions() -> None:
    path = SCENARIOS.parent / "metric" / "restart-mid-breach-and-while-triggered.json"
    scenario = json.loads(path.read_text())
    result = ok_json(cli(None, "simulate", str(path)))
    assert result == scenario["expect"]
    assert result["firings"][0]["triggering_value"] == 2.0


def test_simulate_exits_2_on_a_malformed_scenario(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(
        json.dumps(
            {
                "automation": {"name": "x", "trigger": {"posture": "Up"}, "actions": []},
                "steps": [],
                "until": 1,
            }
        )
    )
    result = cli(None, "simulate", str(tmp_path / "s.json"))
    assert result.returncode == 2
    assert "trigger.posture" in result.stderr
    (tmp_path / "u.json").write_text(
        json.dumps({"automation": {"name": "x", "trigger": {}, "actions": []}})
    )
    missing = cli(None, "simulate", str(tmp_path / "u.json"))
    assert missing.returncode == 2 and "steps" in missing.stderr
    (tmp_path / "t.json").write_text("{not json")
    assert cli(None, "simulate", str(tmp_path / "t.json")).returncode == 2


def test_config_show_masks_secrets() -> None:
    env_url = "postgresql://app:hunter2@db.internal/automations"
    result = subprocess.run(
        [sys.executable, "-m", "automations.cli.main", "config", "show"],
        capture_output=True,
        text=True,
        env={**os.environ, "AUTOMATIONS_DATABASE_URL": env_url},
        timeout=60,
    )
    assert result.returncode == 0
    assert "hunter2" not in result.stdout
    assert (
        json.loads(result.stdout)["database_url"] == "postgresql://app:****@db.internal/automations"
    )
