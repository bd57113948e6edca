"""Pending rules are sealed into new shards when due; shards are retired once dead or small.

Pure: the rulesets are never created here (each installed shard gets a made-up handle).
"""

from __future__ import annotations

import itertools

from automations.engine.rete import compiler, lifecycle, packing, stats

RID = "prefect.resource.id"


def make_book(
    *,
    max_rules: int = 256,
    seal_min_rules: int = 32,
    seal_after_batches: int = 2,
    retire_min_dead: int = 16,
    max_small_shards: int = 8,
) -> lifecycle.RuleBook:
    return lifecycle.RuleBook(
        packing.Limits(max_rules=max_rules, max_names=32),
        compiler.FieldNames(),
        stats.ReteStats(),
        seal_min_rules=seal_min_rules,
        seal_after_batches=seal_after_batches,
        retire_min_dead=retire_min_dead,
        max_small_shards=max_small_shards,
    )


def key(k: int, name: str = "x") -> compiler.RuleKey:
    return compiler.RuleKey(name, ((RID, (f"r.{k}",)),))


_handles = itertools.count(1)


def create(book: lifecycle.RuleBook, packs: list[packing.Pack] | None) -> list[packing.Shard]:
    """What the matcher does with the packs maintain hands it (a ruleset each)."""
    assert packs is not None
    out = []
    for pack in packs:
        handle = next(_handles)
        out.append(book.install(f"s{handle}", handle, pack.rules, "{}"))
    return out


def test_triggers_testing_the_same_key_share_one_rule_until_the_last_lets_go() -> None:
    book = make_book()
    first, second = book.acquire(key(1)), book.acquire(key(1))
    assert first is second and first.refs == 2
    assert book.pending == {first.number: first}
    book.release(first)
    assert book.by_number == {first.number: first}
    book.release(first)
    assert book.by_number == {} and book.by_key == {} and book.pending == {}
    assert not book.dirty  # it was in no shard


def test_new_rules_wait_until_enough_are_pending_or_the_oldest_waited_long_enough() -> None:
    book = make_book(seal_min_rules=3, seal_after_batches=2)
    book.acquire(key(1))
    assert not book.seal_due()
    assert book.maintain() is None and len(book.pending) == 1
    book.batches = 1
    assert not book.seal_due()
    book.batches = 2
    assert book.seal_due()
    enough = make_book(seal_min_rules=3, seal_after_batches=2)
    for k in range(3):
        enough.acquire(key(k))
    assert enough.seal_due()
    assert make_book().seal_due(force=True) is False  # nothing pending: nothing to seal


def test_sealing_compiles_the_pending_rules_into_new_shards_by_name_pattern() -> None:
    book = make_book()
    rules = [book.acquire(key(1, "b")), book.acquire(key(2, "a")), book.acquire(key(3, "b"))]
    packs = book.maintain(force=True)
    assert packs is not None and book.pending == {}
    (pack,) = packs
    assert [r.key.name_pattern for r in pack.rules] == ["a", "b", "b"]
    assert all(r.compiled is not None and r.compiled.key == r.key for r in rules)
    (shard,) = create(book, packs)
    assert book.shards == [shard] and all(r.shard is shard for r in rules)
    assert book.maintain(force=True) is None  # nothing pending, nothing to retire


def test_a_shard_is_retired_once_half_its_rules_are_dead_and_its_live_rules_are_resealed() -> None:
    book = make_book(retire_min_dead=2)
    rules = [book.acquire(key(k)) for k in range(6)]
    (old,) = create(book, book.maintain(force=True))
    for rule in rules[:2]:
        book.release(rule)
    assert old.dead == 2 and book.dirty
    assert book.maintain() is None  # 2 of 6 dead: kept
    assert not book.dirty and book.shards == [old]
    book.release(rules[2])
    packs = book.maintain()
    assert packs is not None and [p.rules for p in packs] == [rules[3:]]
    assert old.retired and book.shards == [] and book.counters.rulesets_abandoned == 1
    (new,) = create(book, packs)
    assert book.shards == [new] and all(r.shard is new for r in rules[3:])
    assert all(r.shard is old for r in rules[:3])  # dead rules stay in the abandoned ruleset


def test_a_few_dead_rules_never_retire_a_shard() -> None:
    book = make_book(retire_min_dead=16)
    rules = [book.acquire(key(k)) for k in range(20)]
    (shard,) = create(book, book.maintain(force=True))
    for rule in rules[:10]:  # half dead, but fewer than retire_min_dead
        book.release(rule)
    assert book.maintain() is None
    assert book.shards == [shard] and book.counters.rulesets_abandoned == 0


def test_a_shard_whose_rules_all_died_is_retired_however_few_they_are() -> None:
    # automations created and deleted one at a time: each seal makes a shard of a few rules of
    # distinct names, too many names to count as small, too few dead ones to reach the minimum
    book = make_book(retire_min_dead=16)
    rules = [book.acquire(key(k, f"n{k}")) for k in range(10)]
    (shard,) = create(book, book.maintain(force=True))
    assert shard.names == 10
    for rule in rules[:9]:
        book.release(rule)
    assert book.maintain() is None and book.shards == [shard]  # one rule still lives in it
    book.release(rules[9])
    assert book.maintain() == [] and book.shards == [] and shard.retired
    assert book.counters.rulesets_abandoned == 1


def test_shards_small_in_live_rules_and_live_names_are_compacted() -> None:
    book = make_book(max_small_shards=2, retire_min_dead=16)
    survivors = []
    for batch in range(3):  # three shards of 10 names each; all but one rule of each dies
        rules = [book.acquire(key(100 * batch + k, f"n{batch}.{k}")) for k in range(10)]
        create(book, book.maintain(force=True))
        for rule in rules[1:]:
            book.release(rule)
        survivors.append(rules[0])
    assert len(book.shards) == 3 and all(s.names == 10 for s in book.shards)
    packs = book.maintain()
    assert packs is not None and [p.rules for p in packs] == [survivors]
    assert book.shards == [] and book.counters.rulesets_abandoned == 3


def test_more_small_shards_than_allowed_are_compacted_into_one() -> None:
    book = make_book(max_small_shards=2)
    rules = []
    for k in range(3):  # a trickle: each seal makes a shard of one rule
        rules.append(book.acquire(key(k, f"n{k}")))
        create(book, book.maintain(force=True))
    assert len(book.shards) == 3
    packs = book.maintain()
    assert packs is not None and [p.rules for p in packs] == [rules]
    assert book.shards == [] and book.counters.rulesets_abandoned == 3
    create(book, packs)
    assert [len(s.rules) for s in book.shards] == [3]


def test_shards_a_quarter_full_or_more_are_not_compacted() -> None:
    book = make_book(max_rules=8, max_small_shards=2)
    for k in range(3):
        for j in range(2):  # 2 of 8 rules: not below a quarter
            book.acquire(key(10 * k + j, f"n{k}"))
        create(book, book.maintain(force=True))
    assert book.small_shards() == []
    assert book.maintain() is None and len(book.shards) == 3


def test_a_retired_shards_live_rules_wait_from_the_retirement_on() -> None:
    book = make_book(retire_min_dead=1, seal_min_rules=100, seal_after_batches=5)
    rules = [book.acquire(key(k)) for k in range(2)]
    (shard,) = create(book, book.maintain(force=True))
    book.batches = 7
    book.release(rules[0])
    book.retire(shard)
    assert book.pending == {rules[1].number: rules[1]} and rules[1].pending_since == 7
    assert rules[1].shard is None and rules[0].shard is shard
