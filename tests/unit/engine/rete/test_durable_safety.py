"""durable_rules is only used along its safe paths: one sid, unique ids, one thread, no deletes."""

from __future__ import annotations

import json
import threading
from typing import Any

import durable_rules_engine
import pytest

from automations.engine.rete.runtime import ReteMatcher

from .helpers import SingleThreadMatcher, event, trig

ALLOWED = {
    "create_ruleset",
    "assert_facts",
    "start_action",
    "complete_and_start_action",
    "retract_facts",
    "get_facts",
}


class Recorder:
    """Wraps the C module and records every call (name, args, thread)."""

    error = durable_rules_engine.error

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], int]] = []

    def __getattr__(self, name: str) -> Any:
        fn = getattr(durable_rules_engine, name)

        def call(*args: Any) -> Any:
            self.calls.append((name, args, threading.get_ident()))
            return fn(*args)

        return call


def _workload(m: Any) -> None:
    for k in range(40):
        m.load(
            f"a{k}",
            [trig(f"t{k}", expect=[f"e.{k % 5}", "x.*"], match={"env": [f"v{k % 7}", "w*"]})],
        )
    for round_ in range(5):
        batch = [
            event(f"e.{i % 6}" if i % 3 else "x.y", {"env": f"v{i % 9}" if i % 2 else "wq"})
            for i in range(1200)
        ]
        m.match_batch(batch)
        if round_ == 2:
            for k in range(0, 40, 2):
                m.unload(f"a{k}")


def test_only_safe_entry_points_one_sid_and_unique_ids() -> None:
    rec = Recorder()
    m = ReteMatcher(engine_module=rec, seal_after_batches=0, max_rules=8, retire_min_dead=2)
    _workload(m)
    names = {name for name, _, _ in rec.calls}
    assert names <= ALLOWED
    assert "assert_facts" in names and "complete_and_start_action" in names
    ids: set[str] = set()
    for name, args, _ in rec.calls:
        if name == "assert_facts":
            facts = json.loads(args[1])
            assert 0 < len(facts) <= 500
            for fact in facts:
                assert "sid" not in fact
                assert fact["id"] not in ids
                ids.add(fact["id"])
        if name == "get_facts":
            assert args[1] == "0"
    assert len({thread for _, _, thread in rec.calls}) == 1
    assert m.held_facts() == 0


def test_rulesets_are_never_reused_after_retirement() -> None:
    rec = Recorder()
    m = ReteMatcher(engine_module=rec, seal_after_batches=0, max_rules=8, retire_min_dead=2)
    _workload(m)
    created = [(args[0], None) for name, args, _ in rec.calls if name == "create_ruleset"]
    assert len({n for n, _ in created}) == len(created)
    assert m.stats.rulesets_abandoned > 0


def test_a_second_thread_is_refused() -> None:
    m = ReteMatcher(seal_after_batches=0)
    m.load("a", [trig("t", expect=["x"], match={"env": ["p"]})])
    m.match_batch([event("x", {"env": "p"})])
    errors: list[BaseException] = []

    def other() -> None:
        for call in (
            lambda: m.match_batch([event("x", {"env": "p"})]),
            lambda: m.load("b", []),
            lambda: m.unload("a"),
            m.flush,
        ):
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 4 and all(isinstance(e, RuntimeError) for e in errors)
    assert len(m.match_batch([event("x", {"env": "p"})])[0]) == 1


def test_single_thread_facade_serves_many_callers_on_one_thread() -> None:
    rec = Recorder()
    facade = SingleThreadMatcher(ReteMatcher(engine_module=rec, seal_after_batches=0))
    try:
        facade.load("a", [trig("t", expect=["x"], match={"env": ["p"]})])
        results: list[int] = []

        def caller() -> None:
            out = facade.match_batch([event("x", {"env": "p"}) for _ in range(50)])
            results.append(sum(len(t) for t in out))

        threads = [threading.Thread(target=caller) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [50] * 4
        assert len({thread for _, _, thread in rec.calls}) == 1
        assert rec.calls[0][2] != threading.get_ident()
    finally:
        facade.close()


def test_batches_larger_than_a_chunk_are_split() -> None:
    rec = Recorder()
    m = ReteMatcher(engine_module=rec, seal_after_batches=0)
    m.load("a", [trig("t", expect=["x"], match={"env": ["p"]})])
    out = m.match_batch([event("x", {"env": "p"}) for _ in range(1234)])
    assert sum(len(t) for t in out) == 1234
    sizes = [len(json.loads(a[1])) for n, a, _ in rec.calls if n == "assert_facts"]
    assert sizes == [500, 500, 234]


@pytest.mark.parametrize("code", [2])
def test_observed_message_falls_back_to_python(code: int) -> None:
    class Observing(Recorder):
        def __getattr__(self, name: str) -> Any:
            fn = super().__getattr__(name)
            if name != "assert_facts":
                return fn

            def call(*args: Any) -> Any:
                fn(*args)
                return (code, 0)

            return call

    m = ReteMatcher(engine_module=Observing(), seal_after_batches=0)
    m.load("a", [trig("t", expect=["x"], match={"env": ["p"]})])
    out = m.match_batch([event("x", {"env": "p"}), event("x", {"env": "q"})])
    assert [len(t) for t in out] == [1, 0]
    assert m.stats.fallbacks == 1
    assert m.held_facts() == 0


def test_a_failing_post_falls_back_to_python_and_leaves_nothing_held() -> None:
    class Failing(Recorder):
        def __getattr__(self, name: str) -> Any:
            fn = super().__getattr__(name)
            if name != "assert_facts":
                return fn

            def call(handle: int, facts: str) -> Any:
                parsed = json.loads(facts)
                fn(handle, json.dumps(parsed[: len(parsed) // 2]))  # half went in, then it broke
                raise durable_rules_engine.error("Could not assert facts, error code: 303")

            return call

    m = ReteMatcher(engine_module=Failing(), seal_after_batches=0)
    m.load("a", [trig("t", expect=["x"], match={"env": ["p"]})])
    out = m.match_batch([event("x", {"env": "p" if i % 2 else "q"}) for i in range(10)])
    assert [len(t) for t in out] == [i % 2 for i in range(10)]
    assert m.stats.fallbacks == 1
    assert m.held_facts() == 0


def test_a_rejected_ruleset_is_rebuilt_without_regexes() -> None:
    class RejectsRegex(Recorder):
        def __getattr__(self, name: str) -> Any:
            fn = super().__getattr__(name)
            if name != "create_ruleset":
                return fn

            def call(rs_name: str, definition: str) -> Any:
                if '"$mt"' in definition:
                    raise durable_rules_engine.error("Could not create ruleset, error code: 503")
                return fn(rs_name, definition)

            return call

    m = ReteMatcher(engine_module=RejectsRegex(), seal_after_batches=0)
    m.load("a", [trig("t", expect=["x.*"], match={"env": ["p*"], "id": ["r"]})])
    out = m.match_batch(
        [event("x.1", {"env": "pq", "id": "r"}), event("x.1", {"env": "q", "id": "r"})]
    )
    assert [len(t) for t in out] == [1, 0]
    assert m.stats.rulesets_created == 1 and m.stats.posts == 2
