"""Loaded automations cost an event nothing unless its name could match; shards stay bounded."""

from __future__ import annotations

from automations.engine.rete.runtime import ReteMatcher

from .helpers import event, trig

RID = "prefect.resource.id"


def _load_many(m: ReteMatcher, n: int) -> None:
    for k in range(n):
        m.load(
            f"auto{k}",
            [trig(f"t{k}", expect=[f"svc.{k}.done"], match={RID: [f"res.{k % 100}.*"]})],
        )


def _work(m: ReteMatcher, ev_name: str, rid: str) -> tuple[int, int, int, int]:
    before = (m.stats.posts, m.stats.shard_posts, m.stats.actions, m.stats.python_checks)
    m.match_batch([event(ev_name, {RID: rid})])
    after = (m.stats.posts, m.stats.shard_posts, m.stats.actions, m.stats.python_checks)
    return tuple(a - b for a, b in zip(after, before, strict=True))  # type: ignore[return-value]


def test_ten_thousand_automations_do_not_slow_an_unrelated_event() -> None:
    small = ReteMatcher()
    _load_many(small, 1)
    small.flush()
    big = ReteMatcher()
    _load_many(big, 10_000)
    big.flush()
    assert big.shard_count >= 10_000 // 32  # 32 distinct names per ruleset
    assert all(rules <= 256 for rules, _ in big.shard_sizes())
    # unrelated: no ruleset is posted to, nothing is evaluated, with 1 or 10,000 loaded
    assert (
        _work(big, "other.event", "res.1.x")
        == _work(small, "other.event", "res.1.x")
        == (
            0,
            0,
            0,
            0,
        )
    )
    # related to exactly one automation: one fact into one ruleset, one action
    assert _work(big, "svc.4321.done", "res.21.x") == (1, 1, 1, 0)
    assert _work(big, "svc.4321.done", "res.22.x") == (1, 1, 0, 0)
    touched = big.match_batch([event("svc.4321.done", {RID: "res.21.x"})])[0]
    assert [t.automation_id for t in touched] == ["auto4321"]


def test_shared_rules_are_compiled_once() -> None:
    m = ReteMatcher()
    for k in range(1000):
        m.load(f"a{k}", [trig(f"t{k}", expect=["deploy.done"], match={"env": ["prod"]})])
    m.flush()
    assert m.shard_sizes() == [(1, 0)]
    out = m.match_batch([event("deploy.done", {"env": "prod"})])[0]
    assert len(out) == 1000
    assert m.stats.actions == 1


def test_pending_rules_match_in_python_until_sealed() -> None:
    m = ReteMatcher(seal_min_rules=100, seal_after_batches=3)
    m.load("a", [trig("t", expect=["x"], match={"env": ["p"]})])
    for _ in range(2):
        assert len(m.match_batch([event("x", {"env": "p"})])[0]) == 1
        assert m.pending_rules == 1 and m.stats.posts == 0
    assert len(m.match_batch([event("x", {"env": "p"})])[0]) == 1
    assert m.pending_rules == 0 and m.stats.posts == 1


def test_unload_retires_shards_and_bounds_the_abandoned_rulesets() -> None:
    m = ReteMatcher(max_rules=64, max_names=64, retire_min_dead=16, seal_after_batches=0)
    _load_many(m, 640)
    m.flush()
    created = m.stats.rulesets_created
    assert created == 10
    for k in range(0, 640, 2):  # half of every shard dies
        m.unload(f"auto{k}")
    m.match_batch([event("svc.1.done", {RID: "res.1.a"})])
    # shards past the dead ratio were retired, their live rules resealed together
    assert 1 <= m.stats.rulesets_abandoned <= 320 // 16
    assert all(dead < 16 or dead * 2 < rules for rules, dead in m.shard_sizes())
    assert m.shard_count < 10
    assert m.pending_rules == 0
    for k in range(1, 640, 2):
        out = m.match_batch([event(f"svc.{k}.done", {RID: f"res.{k % 100}.z"})])[0]
        assert [t.automation_id for t in out] == [f"auto{k}"]
    for k in range(0, 640, 2):
        assert m.match_batch([event(f"svc.{k}.done", {RID: f"res.{k % 100}.z"})]) == [[]]


def test_few_dead_rules_do_not_rebuild_a_shard() -> None:
    m = ReteMatcher(seal_after_batches=0, max_names=256)
    _load_many(m, 100)
    m.flush()
    for k in range(10):
        m.unload(f"auto{k}")
    m.match_batch([event("svc.50.done", {RID: "res.50.a"})])
    assert m.stats.rulesets_abandoned == 0
    assert m.shard_sizes() == [(100, 10)]


def test_trickle_loads_are_compacted() -> None:
    m = ReteMatcher(seal_after_batches=0, max_small_shards=4)
    for k in range(30):
        m.load(f"a{k}", [trig(f"t{k}", expect=[f"n{k}"], match={"env": ["p"]})])
        m.match_batch([event(f"n{k}", {"env": "p"})])
    assert m.shard_count <= 5
    for k in range(30):
        assert len(m.match_batch([event(f"n{k}", {"env": "p"})])[0]) == 1


def test_reload_keeps_order_and_shared_rules() -> None:
    m = ReteMatcher(seal_after_batches=0)
    m.load("a", [trig("t1", expect=["x"], match={"env": ["p"]})])
    m.load("b", [trig("t2", expect=["x"], match={"env": ["p"]})])
    m.flush()
    m.load("a", [trig("t1b", expect=["x"], match={"env": ["p"]})])
    out = m.match_batch([event("x", {"env": "p"})])[0]
    assert [t.trigger.id for t in out] == ["t1b", "t2"]
    assert m.stats.rulesets_created == 1 and m.pending_rules == 0


def test_full_shards_of_distinct_names_are_not_compacted() -> None:
    m = ReteMatcher(seal_after_batches=0)
    _load_many(m, 2000)
    m.flush()
    shards = m.shard_count
    m.load("late", [trig("late", expect=["late.x"], match={RID: ["r"]})])
    assert len(m.match_batch([event("late.x", {RID: "r"})])[0]) == 1
    assert m.stats.rulesets_abandoned == 0
    assert m.shard_count == shards + 1


def test_ten_thousand_wildcard_automations_do_not_slow_a_new_event_name() -> None:
    m = ReteMatcher()
    for k in range(10_000):
        m.load(f"auto{k}", [trig(f"t{k}", expect=[f"svc.{k}.*"], match={RID: ["res.*"]})])
    m.flush()
    m.match_batch([event(f"other.{i}", {RID: "res.1"}) for i in range(100)])  # 100 new names
    assert m.stats.name_checks == 0 and m.stats.posts == 0
    out = m.match_batch([event("svc.4321.done", {RID: "res.1"})])[0]
    assert [t.automation_id for t in out] == ["auto4321"]
    assert m.stats.name_checks == 1 and m.stats.posts == 1 and m.stats.shard_posts == 1


def test_a_chunk_of_uncovered_names_touches_nothing_and_one_covered_event_among_them_is_found() -> (
    None
):
    m = ReteMatcher()
    m.load("a", [trig("t", expect=["deploy.done"], match={"env": ["prod"]})])
    m.load("b", [trig("u", expect=["deploy.*"])])
    m.flush()
    quiet = [event(f"other.{k % 7}", {"env": "prod"}) for k in range(300)]
    assert m.match_batch(quiet) == [[] for _ in quiet]
    mixed = [*quiet[:150], event("deploy.done", {"env": "prod"}), *quiet[150:]]
    out = m.match_batch(mixed)
    assert [[t.automation_id for t in touches] for touches in out] == (
        [[]] * 150 + [["a", "b"]] + [[]] * 150
    )
    # a plain (spec-free) trigger alone is enough for the chunk to be looked at event by event
    assert [t.automation_id for t in m.match_batch([*quiet[:5], event("deploy.x", {})])[5]] == ["b"]
