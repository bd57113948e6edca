"""Every conformance scenario gives the same firings through cluster routing, with 1 and 16 partitions.

Each scenario is replayed by ``cluster.partitioned_simulation``: one replica owning all ``Q``
partitions in this process, each with its own engine, events split by raw partition and touches
forwarded to where their trigger's state lives. With ``Q = 16`` the scenarios' resources, keys and
automations spread over partitions, so forwarding, per-partition state (restart steps rebuild each
partition from its own records) and ``follows`` across partitions are exercised. Partitions fire
independently, so firings of one instant are compared without their order across partitions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from automations.cluster import partitioned_simulation
from automations.engine.python_matcher import PythonMatcher
from automations.engine.rete.runtime import ReteMatcher

HERE = Path(__file__).parent
FILES = sorted(
    [*(HERE / "scenarios").glob("*.json"), *(HERE / "metric").glob("*.json")]
    + sorted((HERE / "differential").glob("*.json"))
)


def _key(row: dict[str, Any]) -> tuple[float, str, str, Any]:
    return (
        round(float(row["at"]), 3),
        row.get("triggering_event") or "",
        json.dumps(row.get("labels", {}), sort_keys=True),
        row.get("triggering_value"),
    )


def _same(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> bool:
    return sorted(map(_key, expected), key=repr) == sorted(map(_key, actual), key=repr)


def test_the_corpora_are_present() -> None:
    assert len(FILES) >= 150


@pytest.mark.parametrize("partitions", [1, 16])
@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_scenario_through_partitions(path: Path, partitions: int) -> None:
    scenario = json.loads(path.read_text())
    outcome = partitioned_simulation.scenario_outcome(
        scenario, partitions=partitions, matcher_factory=PythonMatcher
    )
    expect = scenario["expect"]
    assert _same(expect["firings"], outcome["firings"]), json.dumps(outcome["firings"])
    if "resolutions" in expect:
        assert _same(expect["resolutions"], outcome["resolutions"]), json.dumps(outcome)


@pytest.mark.parametrize("path", FILES[::5], ids=[f"{p.parent.name}/{p.stem}" for p in FILES[::5]])
def test_scenario_through_partitions_on_the_rete(path: Path) -> None:
    scenario = json.loads(path.read_text())
    outcome = partitioned_simulation.scenario_outcome(
        scenario, partitions=16, matcher_factory=ReteMatcher
    )
    assert _same(scenario["expect"]["firings"], outcome["firings"]), json.dumps(outcome)


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.stem}" for p in FILES])
def test_scenario_through_partitions_taken_over_lazily_at_every_instant(path: Path) -> None:
    """Every partition is rebuilt from its records before each instant, restoring nothing ahead:
    each ``for_each`` bucket is restored when an event touches it or when it comes due."""
    scenario = json.loads(path.read_text())
    outcome = partitioned_simulation.scenario_outcome(
        scenario, partitions=16, matcher_factory=PythonMatcher, lazy=True, takeovers=True
    )
    expect = scenario["expect"]
    assert _same(expect["firings"], outcome["firings"]), json.dumps(outcome["firings"])
    if "resolutions" in expect:
        assert _same(expect["resolutions"], outcome["resolutions"]), json.dumps(outcome)
