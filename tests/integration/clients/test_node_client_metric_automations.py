"""Metric automations through the Node client: a metric trigger (Prefect's, and one of the
extension's as a compound trigger's child) built from the generated TypeScript messages is what
the engine stores as Prefect's JSON, and reads back field for field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.clients import toolchains
from tests.integration.clients.metric_automation_checks import (
    LATENCY_BETWEEN,
    check_stored_as_prefect_json,
    run_client,
)
from tests.integration.engine_process import EngineProcess

pytestmark = pytest.mark.usefixtures("node_ready")

SCRIPT = """
import { connect, CreateAutomationRequest, GetAutomationRequest, MetricAggregation,
         MetricOperator, Automation, unary } from "%(src)s";

const successes = {
  match: { labels: { "prefect.resource.id": { patterns: ["prefect.flow-run.*"] } } },
  matchRelated: [{ labels: { "prefect.resource.id": { patterns: ["prefect.tag.production"] },
                             "prefect.resource.role": { patterns: ["tag"] } } }],
  metric: { name: "successes", threshold: 0.9, operator: MetricOperator.METRIC_OPERATOR_LESS_THAN,
            range: { seconds: 3600 }, firingFor: { seconds: 300 } },
};
const latency = {
  metric: {
    name: "order latency", threshold: 3600,
    operator: MetricOperator.METRIC_OPERATOR_GREATER_THAN,
    range: { seconds: 86400 }, firingFor: { seconds: 600 },
    aggregation: MetricAggregation.METRIC_AGGREGATION_P99,
    value: { kind: { $case: "between" as const,
                     value: { from: ["order.placed"], to: ["order.shipped"], key: "order.id" } } },
    forEach: ["related:customer:prefect.resource.id"],
  },
};

async function main(): Promise<void> {
  const engine = connect(process.argv[2]);
  try {
    const made: string[] = [];
    for (const [displayName, trigger] of [
      ["successes", { kind: { $case: "metric" as const, value: successes } }],
      ["compound", { kind: { $case: "compound" as const, value: {
        require: { kind: { $case: "all" as const, value: true } },
        triggers: [{ kind: { $case: "metric" as const, value: latency } }],
      } } }],
    ] as const) {
      const request = CreateAutomationRequest.fromPartial({
        automation: { displayName, trigger, actionsOnResolve: [{ type: "do-nothing" }] },
      });
      const created = await unary<Automation>((cb) => engine.automations.createAutomation(request, cb));
      const got = await unary<Automation>((cb) =>
        engine.automations.getAutomation(GetAutomationRequest.fromPartial({ name: created.name }), cb));
      made.push(JSON.stringify({ id: got.uid, automation: Automation.toJSON(got) }));
    }
    console.log("[" + made.join(",") + "]");
  } finally {
    engine.close();
  }
}

main().catch((error) => { console.error(error); process.exit(1); });
"""


def test_node_client_creates_and_reads_metric_automations_as_prefect_json(
    engine: EngineProcess, tmp_path: Path
) -> None:
    script = tmp_path / "metric.ts"
    script.write_text(SCRIPT % {"src": toolchains.NODE_DIR / "src" / "index.ts"})
    successes, compound = run_client(
        ["node", "--import", "tsx", str(script), engine.grpc_addr], cwd=toolchains.NODE_DIR
    )

    read = successes["automation"]["trigger"]["metric"]
    assert read["metric"]["operator"] == "METRIC_OPERATOR_LESS_THAN"
    assert (read["metric"]["range"], read["metric"]["firingFor"]) == (
        {"seconds": 3600},
        {"seconds": 300},
    )
    child = compound["automation"]["trigger"]["compound"]["triggers"][0]["metric"]["metric"]
    assert child["aggregation"] == "METRIC_AGGREGATION_P99"
    assert child["value"]["between"] == LATENCY_BETWEEN

    check_stored_as_prefect_json(engine.grpc_addr, successes["id"], compound["id"])
