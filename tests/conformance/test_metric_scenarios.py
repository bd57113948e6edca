"""The metric corpus (tests/conformance/metric): metric triggers and resolutions on the virtual
clock, through the engine with both matchers. Each scenario lists its Triggered firings and its
Resolved ones; a metric firing also has its ``triggering_value``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from automations.engine.python_matcher import PythonMatcher
from automations.engine.simulation import scenario_outcome
from tests.conformance.test_conformance import compare

METRIC = Path(__file__).parent / "metric"
FILES = sorted(METRIC.glob("*.json"))
runtime = pytest.importorskip("automations.engine.rete.runtime")


def same_values(wanted: list[dict[str, Any]], got: list[dict[str, Any]]) -> bool:
    """Equal triggering values (metric firings only), floats to 1e-12 relative."""
    for want, have in zip(wanted, got, strict=False):
        a, b = want.get("triggering_value"), have.get("triggering_value")
        if (a is None) != (b is None) or (a is not None and b != pytest.approx(a, rel=1e-12)):
            return False
    return True


def check(expected: dict[str, Any], actual: dict[str, list[dict[str, Any]]]) -> list[str]:
    problems: list[str] = []
    for part in ("firings", "resolutions"):
        wanted, got = expected.get(part, []), actual[part]
        problems += [f"{part}: {problem}" for problem in compare(wanted, got)]
        if not same_values(wanted, got):
            problems.append(f"{part}: triggering values differ")
    return problems


def test_the_metric_corpus_covers_each_metric_operator_and_rule() -> None:
    names = {path.stem for path in FILES}
    for needed in (
        "successes",
        "duration",
        "lateness",
        "operator-",
        "firing-for-",
        "no-data",
        "grouped",
        "restart",
        "resolves",
    ):
        assert any(needed in name for name in names), needed
    assert len(FILES) >= 16


@pytest.mark.parametrize("matcher", [PythonMatcher, runtime.ReteMatcher], ids=["python", "rete"])
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_metric_scenario(path: Path, matcher: Any) -> None:
    scenario = json.loads(path.read_text())
    actual = scenario_outcome(scenario, matcher_factory=matcher)
    problems = check(scenario["expect"], actual)
    assert not problems, "\n".join(problems) + f"\nactual: {json.dumps(actual)}"
