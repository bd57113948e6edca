"""What every client's metric automations (Node, Go) must be in the engine: Prefect's JSON.

Both clients create the same two automations: "successes" (Prefect's ``successes`` metric over
production flow runs) and "compound" (a compound trigger whose child is a metric of one's own,
the p99 of the seconds between ``order.placed`` and ``order.shipped`` per customer). These are
the fields they must read back with, whatever the client.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import automations
from tests import factories

LATENCY_BETWEEN = {"from": ["order.placed"], "to": ["order.shipped"], "key": "order.id"}
"""The ``between`` value of the compound automation's metric, as every client writes it."""


def check_stored_as_prefect_json(target: str, successes_id: str, compound_id: str) -> None:
    """Checks the engine's own view (Prefect's JSON, through the Python client) of both."""
    with automations.Client(target) as client:
        stored = client.get_automation(successes_id)
        nested = client.get_automation(compound_id)
    assert factories.without_ids(stored["trigger"]) == factories.prefect_metric_trigger()
    assert stored["actions_on_resolve"] == [{"type": "do-nothing"}]
    assert factories.without_ids(nested["trigger"]["triggers"][0])["metric"] == {
        "name": "order latency",
        "threshold": 3600,
        "operator": ">",
        "range": 86400,
        "firing_for": 600,
        "aggregation": "p99",
        "value": {"between": LATENCY_BETWEEN},
        "for_each": ["related:customer:prefect.resource.id"],
    }




def run_client(args: list[str], cwd: Path | None = None) -> tuple[Any, Any]:
    """Runs a client's metric example against the engine: both automations as it read them."""
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    successes, compound = json.loads(done.stdout)
    return successes, compound
