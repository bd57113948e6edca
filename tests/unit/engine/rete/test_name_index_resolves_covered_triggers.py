"""The name index resolves an event name to the triggers it covers, as Prefect's index does."""

from __future__ import annotations

from automations.engine.rete import compiler, names, packing, stats

from .helpers import trig


def index_of(*entries: names.Entry) -> names.NameIndex:
    index = names.NameIndex(stats.ReteStats())
    index.add(entries)
    return index


def test_exact_names_and_patterns_resolve_in_load_order() -> None:
    late = names.Entry("b", trig("t2", expect=["deploy.done"]), (1, 0))
    early = names.Entry("a", trig("t1", expect=["deploy.*"]), (0, 0))
    index = index_of(late, early)
    found = index.resolve("deploy.done")
    assert [entry.automation_id for entry, _ in found.plain] == ["a", "b"]
    assert index.cache["deploy.done"] is found
    assert index.resolve("other") is names.NO_CANDIDATES
    assert index.resolve("deploy.") is names.NO_CANDIDATES  # Prefect's regex wants ".+"


def test_after_and_expect_flags_come_with_the_touch() -> None:
    entry = names.Entry("a", trig("t", after=["run.started"], expect=["run.*"]), (0, 0))
    index = index_of(entry)
    ((_, started),) = index.resolve("run.started").plain
    ((_, failed),) = index.resolve("run.failed").plain
    assert (started.after, started.expect) == (True, True)
    assert (failed.after, failed.expect) == (False, True)


def test_a_trigger_without_expect_covers_every_name() -> None:
    index = index_of(names.Entry("a", trig("t"), (0, 0)))
    assert len(index.resolve("anything.at.all").plain) == 1


def test_only_triggers_whose_rules_are_all_sealed_go_through_shards() -> None:
    sealed_entry = names.Entry("a", trig("t1", expect=["x"], match={"env": ["p"]}), (0, 0))
    pending_entry = names.Entry("b", trig("t2", expect=["x"], match={"env": ["q"]}), (1, 0))
    fields = compiler.FieldNames()
    shard = packing.Shard("s")
    rules = []
    for number, entry in enumerate((sealed_entry, pending_entry), start=1):
        (rule_key,) = compiler.rule_keys(entry.trigger)
        rule = packing.Rule(rule_key, number)
        rule.compiled = compiler.compile_rule(rule_key, fields)
        entry.rules = (rule,)
        rules.append(rule)
    packing.fill(shard, rules[:1], fields)
    found = index_of(sealed_entry, pending_entry).resolve("x")
    assert [e.automation_id for e, _ in found.plain] == ["b"]
    assert [e.automation_id for e, _ in found.sealed] == ["a"]
    assert found.shards == (shard,) and list(found.by_rule) == [1]


def test_removed_triggers_are_no_longer_found() -> None:
    kept = names.Entry("a", trig("t1", expect=["x.*"]), (0, 0))
    gone = names.Entry("b", trig("t2", expect=["x.*", "y"]), (1, 0))
    index = index_of(kept, gone)
    index.remove([gone])
    index.cache.clear()
    assert [e.automation_id for e, _ in index.resolve("x.1").plain] == ["a"]
    assert index.resolve("y") is names.NO_CANDIDATES
    index.remove([kept])
    assert index.exact == {} and index.wild == {} and index.wild_lengths == {}


def test_each_resolution_counts_the_triggers_whose_patterns_were_checked() -> None:
    counters = stats.ReteStats()
    index = names.NameIndex(counters)
    index.add([names.Entry("a", trig("t1", expect=["x.*"]), (0, 0))])
    index.add([names.Entry("b", trig("t2", expect=["y.*"]), (1, 0))])
    index.resolve("x.1")
    index.resolve("z")
    assert counters.name_checks == 1
