"""A post asserts one fact per event, keeps the live rules each fired and retracts what fired.

The C module is a fake here (it fires the rules a test names and echoes facts as durable does);
``test_durable_safety`` runs the same path against durable_rules itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from automations.domain import events
from automations.engine.rete import _gateway, batches, compiler, packing, stats


class FakeError(Exception):
    pass


class FakeModule:
    """Fires ``fires(fact)`` rule numbers per asserted fact; records asserts and retracts.

    Actions have durable's shape: ``{"r1":{"m":<the fact as posted>}}``.
    """

    error = FakeError

    def __init__(self, fires: Callable[[dict[str, str]], list[int]], code: int = 0) -> None:
        self.fires = fires
        self.code = code
        self.asserted: list[list[dict[str, str]]] = []
        self.retracted: list[list[str]] = []
        self._queue: list[str] = []

    def assert_facts(self, handle: int, facts: str) -> tuple[int, int]:
        parsed = json.loads(facts)
        self.asserted.append(parsed)
        for fact in parsed:
            for number in self.fires(fact):
                self._queue.append(f'{{"r{number}":{{"m":{json.dumps(fact)}}}}}')
        return (self.code, 0)

    def start_action(self, handle: int) -> tuple[Any, str, int] | None:
        return (None, self._queue.pop(0), 7) if self._queue else None

    def complete_and_start_action(self, handle: int, state: int) -> str | None:
        return self._queue.pop(0) if self._queue else None

    def retract_facts(self, handle: int, facts: str) -> None:
        self.retracted.append([f["id"] for f in json.loads(facts)])


def shard_with(numbers: list[int], fields: tuple[tuple[str, str], ...] = ()) -> packing.Shard:
    shard = packing.Shard("s")
    shard.handle = 1
    shard.fields = fields
    for number in numbers:
        rule = packing.Rule(compiler.RuleKey("x", ()), number)
        rule.shard = shard
        shard.rules[number] = rule
    return shard


def ev(name: str, **labels: str) -> events.Event:
    return events.Event(id="e", event=name, occurred=0.0, resource=labels)


def test_each_event_gets_the_live_rules_of_this_shard_that_fired_once_each() -> None:
    shard = shard_with([1, 2])
    elsewhere = shard_with([4])
    by_number = {1: shard.rules[1], 2: shard.rules[2], 4: elsewhere.rules[4]}  # 3: dead
    module = FakeModule(lambda fact: [1, 1, 3, 4, 2] if fact["n"] == "hit" else [])
    counters = stats.ReteStats()
    poster = batches.Poster(_gateway.Gateway(module), by_number, counters)
    chunk = [ev("miss"), ev("hit"), ev("miss"), ev("hit")]
    fired: dict[int, list[packing.Rule]] = {}
    python_path: set[int] = set()
    poster.post(shard, chunk, [1, 2], fired, python_path)
    assert fired == {1: [shard.rules[1], shard.rules[2]]}  # chunk[3] was not posted
    assert python_path == set()
    assert [(f["id"], f["n"]) for f in module.asserted[0]] == [("000-1", "hit"), ("001-1", "miss")]
    assert module.retracted == [["000-1"]]  # only what fired is held by durable
    assert (counters.posts, counters.shard_posts, counters.actions) == (2, 1, 5)


def test_each_post_has_its_own_ids_and_carries_only_the_fields_the_shard_reads() -> None:
    shard = shard_with([1], fields=(("env", "l1"), ("team", "l2")))
    module = FakeModule(lambda fact: [])
    poster = batches.Poster(_gateway.Gateway(module), {1: shard.rules[1]}, stats.ReteStats())
    poster.post(shard, [ev("a", env="p", other="o")], [0], {}, set())
    poster.post(shard, [ev("b", team="t")], [0], {}, set())
    assert module.asserted == [
        [{"id": "000-1", "n": "a", "l1": "p"}],
        [{"id": "000-2", "n": "b", "l2": "t"}],
    ]
    assert module.retracted == []


def test_a_post_durable_reports_as_observed_is_matched_in_python_and_fully_retracted() -> None:
    shard = shard_with([1])
    module = FakeModule(lambda fact: [1], code=2)
    counters = stats.ReteStats()
    poster = batches.Poster(_gateway.Gateway(module), {1: shard.rules[1]}, counters)
    python_path: set[int] = set()
    poster.post(shard, [ev("a"), ev("b")], [0, 1], {}, python_path)
    assert python_path == {0, 1} and counters.fallbacks == 1
    assert module.retracted == [["000-1", "001-1"]]


def test_a_failing_post_is_matched_in_python() -> None:
    class Failing(FakeModule):
        def assert_facts(self, handle: int, facts: str) -> tuple[int, int]:
            raise FakeError("Could not assert facts, error code: 303")

    shard = shard_with([1])
    module = Failing(lambda fact: [])
    counters = stats.ReteStats()
    poster = batches.Poster(_gateway.Gateway(module), {1: shard.rules[1]}, counters)
    python_path: set[int] = set()
    poster.post(shard, [ev("a")], [0], {}, python_path)
    assert python_path == {0} and counters.fallbacks == 1
    assert module.retracted == [["000-1"]]
