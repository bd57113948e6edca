"""Rules are packed into new shards within every limit of one ruleset (no durable_rules needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from automations.engine.rete import compiler, packing

RID = "prefect.resource.id"
LIMITS = packing.Limits(max_rules=256, max_names=32)


def rule(
    number: int, name: str | None, spec: dict[str, tuple[str, ...]], fields: compiler.FieldNames
) -> packing.Rule:
    r = packing.Rule(compiler.RuleKey(name, compiler.canonical_spec(spec)), number)
    r.compiled = compiler.compile_rule(r.key, fields)
    return r


def sizes(packs: list[packing.Pack]) -> list[int]:
    return [len(p.rules) for p in packs]


def test_rules_exclusive_on_one_label_fill_one_shard() -> None:
    fields = compiler.FieldNames()
    rules = [rule(k, "x", {RID: (f"r.{k}",)}, fields) for k in range(200)]
    (only,) = packing.pack(rules, LIMITS)
    assert only.rules == rules
    assert only.groups["x"].total == 1  # one rid can match a fact, not 200


def test_rules_that_may_all_match_one_fact_are_split_at_the_alpha_path_bound() -> None:
    fields = compiler.FieldNames()
    rules = [rule(k, "x", {RID: (f"r.{k}.*",)}, fields) for k in range(100)]
    assert sizes(packing.pack(rules, LIMITS)) == [48, 48, 4]


def test_a_name_pattern_counts_against_every_exact_name() -> None:
    fields = compiler.FieldNames()
    wild = [rule(k, "x.*", {RID: (f"r.{k}.*",)}, fields) for k in range(40)]
    exact = [rule(100 + k, "x.a", {RID: (f"r.{k}.*",)}, fields) for k in range(9)]
    packs = packing.pack(wild + exact, LIMITS)
    assert sizes(packs) == [48, 1]  # 40 wild + 8 exact paths; the 9th would make 49
    assert packs[1].rules == exact[-1:]


def test_each_shard_holds_at_most_max_names_name_tests() -> None:
    fields = compiler.FieldNames()
    rules = [rule(k, f"n{k:02d}", {RID: ("r",)}, fields) for k in range(70)]
    packs = packing.pack(rules, LIMITS)
    assert sizes(packs) == [32, 32, 6]
    assert [len(p.groups) for p in packs] == [32, 32, 6]


def test_each_shard_holds_at_most_max_rules_rules() -> None:
    fields = compiler.FieldNames()
    rules = [rule(k, "x", {RID: (f"r.{k}",)}, fields) for k in range(25)]
    assert sizes(packing.pack(rules, packing.Limits(max_rules=10, max_names=32))) == [10, 10, 5]


def test_each_shard_reads_at_most_max_fields_labels() -> None:
    fields = compiler.FieldNames()
    rules = [rule(k, "x", {f"label.{k}": ("v",)}, fields) for k in range(12)]
    limits = packing.Limits(max_rules=256, max_names=32, max_fields=5)
    packs = packing.pack(rules, limits)
    assert sizes(packs) == [5, 5, 2]
    assert all(len(p.labels) <= 5 for p in packs)


def test_a_rule_goes_back_to_one_of_the_last_four_shards_with_room() -> None:
    fields = compiler.FieldNames()
    one_name = packing.Limits(max_rules=256, max_names=1)
    names = ["a", "b", "a", "b"]
    rules = [rule(k, n, {RID: (f"r.{k}",)}, fields) for k, n in enumerate(names)]
    packs = packing.pack(rules, one_name)
    assert [[r.number for r in p.rules] for p in packs] == [[0, 2], [1, 3]]
    names = ["a", "b", "c", "d", "e", "a"]
    rules = [rule(k, n, {RID: (f"r.{k}",)}, fields) for k, n in enumerate(names)]
    packs = packing.pack(rules, one_name)
    assert sizes(packs) == [1] * 6  # the first "a" shard is five back: not looked at


def test_an_uncompiled_rule_cannot_be_packed() -> None:
    bare = packing.Rule(compiler.RuleKey("x", ()), 7)
    with pytest.raises(ValueError, match="r7"):
        packing.pack([bare], LIMITS)


def test_a_filled_shard_holds_its_rules_and_lists_the_fields_they_read() -> None:
    fields = compiler.FieldNames()
    rules = [
        rule(1, "x", {"env": ("p",), RID: ("r",)}, fields),
        rule(2, "y.*", {"env": ("q",)}, fields),
    ]
    shard = packing.Shard("s")
    packing.fill(shard, rules, fields)
    assert shard.rules == {1: rules[0], 2: rules[1]}
    assert all(r.shard is shard for r in rules)
    assert shard.fields == (("env", fields.field("env")), (RID, fields.field(RID)))
    assert shard.names == 2 and shard.dead == 0 and not shard.retired


def test_the_shard_model_never_imports_durable_rules() -> None:
    code = (
        "import sys\n"
        "from automations.engine.rete import batches, lifecycle, names, packing, stats\n"
        "assert not any(m.startswith('durable') for m in sys.modules), 'durable imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
