"""The same corpus through the same engine, with the durable_rules matcher (engine.rete)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automations.engine.simulation import run_scenario
from tests.conformance.test_conformance import FILES, compare

runtime = pytest.importorskip("automations.engine.rete.runtime")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_with_the_rete_matcher(path: Path) -> None:
    scenario = json.loads(path.read_text())
    actual = run_scenario(scenario, matcher_factory=runtime.ReteMatcher)
    problems = compare(scenario["expect"]["firings"], actual)
    assert not problems, "\n".join(problems) + f"\nactual: {json.dumps(actual)}"
