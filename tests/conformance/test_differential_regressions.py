"""Generated scenarios whose expected firings come from Prefect 3.8.8's own code (the oracle).

They were produced by differential fuzzing (random triggers and event streams of the corpus's kinds,
replayed through Prefect's own trigger code with its proactive schedule and again with the
proactive pass run every second; only scenarios on which both agree are kept) and guard the details
the public corpus does not cover, e.g. sweeping after lost followers and the order of tied
deadlines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automations.engine.python_matcher import PythonMatcher
from automations.engine.simulation import run_scenario
from tests.conformance.test_conformance import compare

FILES = sorted((Path(__file__).parent / "differential").glob("*.json"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_generated_scenario(path: Path) -> None:
    scenario = json.loads(path.read_text())
    actual = run_scenario(scenario, matcher_factory=PythonMatcher)
    problems = compare(scenario["expect"]["firings"], actual)
    assert not problems, "\n".join(problems) + f"\nactual: {json.dumps(actual)}"
