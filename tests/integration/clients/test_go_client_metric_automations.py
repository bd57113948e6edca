"""Metric automations through the Go client: a metric trigger (Prefect's, and one of the
extension's as a compound trigger's child) built from the generated Go messages is what the
engine stores as Prefect's JSON, reads back field for field, and lists under its trigger type."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.clients.metric_automation_checks import (
    LATENCY_BETWEEN,
    check_stored_as_prefect_json,
    run_client,
)
from tests.integration.engine_process import EngineProcess


# installing Go with apt-get and a cold build take a few minutes at most
@pytest.mark.timeout(900)
def test_go_client_creates_gets_and_lists_metric_automations_as_prefect_json(
    go_metric_automations: Path, engine: EngineProcess
) -> None:
    successes, compound = run_client(
        [str(go_metric_automations), engine.grpc_addr]
    )

    read = successes["automation"]["trigger"]["metric"]
    assert read["match"] == {
        "labels": {"prefect.resource.id": {"patterns": ["prefect.flow-run.*"]}}
    }
    assert read["matchRelated"] == [
        {
            "labels": {
                "prefect.resource.id": {"patterns": ["prefect.tag.production"]},
                "prefect.resource.role": {"patterns": ["tag"]},
            }
        }
    ]
    assert read["metric"] == {
        "name": "successes",
        "threshold": 0.9,
        "operator": "METRIC_OPERATOR_LESS_THAN",
        "range": "3600s",
        "firingFor": "300s",
    }
    assert successes["automation"]["actionsOnResolve"] == [{"type": "do-nothing"}]
    assert successes["listed"] is True

    composite = compound["automation"]["trigger"]["compound"]
    assert composite["requireAll"] is True
    assert composite["triggers"][0]["metric"]["metric"] == {
        "name": "order latency",
        "threshold": 3600,
        "operator": "METRIC_OPERATOR_GREATER_THAN",
        "range": "86400s",
        "firingFor": "600s",
        "aggregation": "METRIC_AGGREGATION_P99",
        "value": {"between": LATENCY_BETWEEN},
        "forEach": ["related:customer:prefect.resource.id"],
    }
    assert compound["listed"] is False  # a compound trigger at the top, not a metric one

    check_stored_as_prefect_json(engine.grpc_addr, successes["id"], compound["id"])
