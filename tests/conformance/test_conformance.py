"""The conformance corpus: every scenario replayed through the engine must match exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from automations.engine.python_matcher import PythonMatcher
from automations.engine.simulation import run_scenario

SCENARIOS = Path(__file__).parent / "scenarios"
FILES = sorted(SCENARIOS.glob("*.json"))
AT_TOLERANCE = 0.001


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def compare(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """Differences between expected and actual firings (empty when they agree)."""
    problems: list[str] = []
    if len(expected) != len(actual):
        problems.append(f"expected {len(expected)} firing(s), got {len(actual)}")
    for index, (exp, act) in enumerate(zip(expected, actual, strict=False)):
        if abs(float(exp["at"]) - float(act["at"])) > AT_TOLERANCE:
            problems.append(f"firing {index}: at {exp['at']} != {act['at']}")
        if exp.get("triggering_event") != act.get("triggering_event"):
            problems.append(
                f"firing {index}: triggering_event {exp.get('triggering_event')!r}"
                f" != {act.get('triggering_event')!r}"
            )
        if exp.get("labels", {}) != act.get("labels", {}):
            problems.append(
                f"firing {index}: labels {exp.get('labels')!r} != {act.get('labels')!r}"
            )
    return problems


def test_the_corpus_is_present() -> None:
    assert len(FILES) >= 59


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path) -> None:
    scenario = _load(path)
    actual = run_scenario(scenario, matcher_factory=PythonMatcher)
    problems = compare(scenario["expect"]["firings"], actual)
    assert not problems, "\n".join(problems) + f"\nactual: {json.dumps(actual)}"
