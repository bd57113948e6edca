"""durable_rules' hard limits, pinned, and the packer keeping every ruleset inside them."""

from __future__ import annotations

import json

import durable_rules_engine
import pytest

from automations.engine.rete.runtime import ReteMatcher

from .helpers import event, trig


def _drain(handle: int) -> int:
    count = 0
    while True:
        result = durable_rules_engine.start_action(handle)
        if not result:
            return count
        message = result[1]
        while message:
            count += 1
            message = durable_rules_engine.complete_and_start_action(handle, result[2])


def test_durable_fails_when_too_many_alpha_paths_match_one_fact() -> None:
    # the limit the packer's weight bound exists for (MAX_STACK_SIZE = 64, error 303)
    def ruleset(n: int) -> str:
        rules = {
            f"r{k}": {"all": [{"m": {"$and": [{"n": "x"}, {"$mt": {"l1": "a" * (k + 1) + ".*"}}]}}]}
            for k in range(n)
        }
        return json.dumps(rules)

    fact = json.dumps([{"id": "1", "n": "x", "l1": "a" * 100}])
    ok = durable_rules_engine.create_ruleset("limits_ok", ruleset(60))
    durable_rules_engine.assert_facts(ok, fact)
    assert _drain(ok) == 60
    bad = durable_rules_engine.create_ruleset("limits_bad", ruleset(70))
    with pytest.raises(durable_rules_engine.error, match="303"):
        durable_rules_engine.assert_facts(bad, fact)


def test_many_simultaneous_matches_are_split_across_rulesets() -> None:
    m = ReteMatcher()
    for k in range(200):
        m.load(f"a{k}", [trig(f"t{k}", expect=["x"], match={"v": ["a" * (k + 1) + "*"]})])
    m.flush()
    assert m.shard_count >= 200 // 48
    out = m.match_batch([event("x", {"v": "a" * 300}), event("x", {"v": "a" * 50})])
    assert [len(t) for t in out] == [200, 50]
    assert m.stats.fallbacks == 0 and m.stats.python_checks == 0
    assert m.held_facts() == 0


def test_a_fact_never_carries_more_properties_than_durable_allows() -> None:
    m = ReteMatcher()
    for k in range(600):
        m.load(f"a{k}", [trig(f"t{k}", expect=["x"], match={f"label.{k}": ["v"]})])
    m.flush()
    labels = {f"label.{k}": "v" for k in range(600)}
    out = m.match_batch([event("x", labels)])
    assert len(out[0]) == 600
    assert m.stats.fallbacks == 0


def test_exclusive_equalities_share_a_ruleset() -> None:
    m = ReteMatcher()
    for k in range(600):
        m.load(f"a{k}", [trig(f"t{k}", expect=["x"], match={"rid": [f"r.{k}"], "env": ["p*"]})])
    m.flush()
    assert m.shard_count == 3  # 256 rules per ruleset: one rid can match, not 256
    out = m.match_batch([event("x", {"rid": f"r.{k}", "env": "prod"}) for k in range(600)])
    assert all([t.automation_id for t in touches] == [f"a{k}"] for k, touches in enumerate(out))
    assert m.stats.fallbacks == 0 and m.stats.python_checks == 0
