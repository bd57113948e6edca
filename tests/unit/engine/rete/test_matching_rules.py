"""Each of Prefect's matching rules, through the rete (sealed shards) and the pending path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from automations.engine.rete.runtime import ReteMatcher

from .helpers import event, reference_touches, trig

RID = "prefect.resource.id"
ROLE = "prefect.resource.role"

# (description, trigger kwargs, event name, resource labels, related, expected touch)
CASES: list[
    tuple[str, dict[str, Any], str, Mapping[str, str], Sequence[Mapping[str, str]], bool]
] = [
    ("exact label", {"match": {RID: ["a.1"]}}, "x", {RID: "a.1"}, (), True),
    ("exact label differs", {"match": {RID: ["a.1"]}}, "x", {RID: "a.10"}, (), False),
    ("label is case-sensitive", {"match": {RID: ["A.1"]}}, "x", {RID: "a.1"}, (), False),
    ("prefix glob", {"match": {RID: ["a.*"]}}, "x", {RID: "a.zz"}, (), True),
    ("prefix glob matches empty rest", {"match": {RID: ["a.*"]}}, "x", {RID: "a."}, (), True),
    ("prefix glob miss", {"match": {RID: ["a.*"]}}, "x", {RID: "b.zz"}, (), False),
    ("star alone needs the label", {"match": {"env": ["*"]}}, "x", {RID: "r"}, (), False),
    (
        "star alone matches empty value",
        {"match": {"env": ["*"]}},
        "x",
        {RID: "r", "env": ""},
        (),
        True,
    ),
    ("inner star glob", {"match": {"f": ["s3://*.csv"]}}, "x", {"f": "s3://b/k.csv"}, (), True),
    (
        "inner star glob miss",
        {"match": {"f": ["s3://*.csv"]}},
        "x",
        {"f": "s3://b/k.json"},
        (),
        False,
    ),
    ("leading star glob", {"match": {"f": ["*.csv"]}}, "x", {"f": "x.csv.csv"}, (), True),
    ("question mark", {"match": {"c": ["a?c"]}}, "x", {"c": "abc"}, (), True),
    ("question mark is one char", {"match": {"c": ["a?c"]}}, "x", {"c": "abbc"}, (), False),
    ("question mark unicode", {"match": {"c": ["a?c"]}}, "x", {"c": "a\u00e9c"}, (), True),
    ("bracket class", {"match": {"z": ["eu-[ab]"]}}, "x", {"z": "eu-b"}, (), True),
    ("bracket class miss", {"match": {"z": ["eu-[ab]"]}}, "x", {"z": "eu-c"}, (), False),
    ("negated bracket class", {"match": {"z": ["eu-[!ab]"]}}, "x", {"z": "eu-c"}, (), True),
    ("negation", {"match": {"env": ["!prod"]}}, "x", {"env": "dev"}, (), True),
    ("negation miss", {"match": {"env": ["!prod"]}}, "x", {"env": "prod"}, (), False),
    (
        "negation never matches a missing label",
        {"match": {"env": ["!prod"]}},
        "x",
        {RID: "r"},
        (),
        False,
    ),
    ("negated glob", {"match": {"env": ["!dev-*"]}}, "x", {"env": "prod"}, (), True),
    ("negated glob miss", {"match": {"env": ["!dev-*"]}}, "x", {"env": "dev-1"}, (), False),
    (
        "negations ORed match almost all",
        {"match": {"env": ["!a", "!b"]}},
        "x",
        {"env": "a"},
        (),
        True,
    ),
    ("list values ORed", {"match": {"env": ["a", "b*"]}}, "x", {"env": "bz"}, (), True),
    ("list values ORed miss", {"match": {"env": ["a", "b*"]}}, "x", {"env": "c"}, (), False),
    ("labels ANDed", {"match": {"env": ["p"], "k": ["v"]}}, "x", {"env": "p", "k": "v"}, (), True),
    (
        "labels ANDed miss",
        {"match": {"env": ["p"], "k": ["v"]}},
        "x",
        {"env": "p", "k": "w"},
        (),
        False,
    ),
    ("empty pattern list never matches", {"match": {"env": []}}, "x", {"env": "p"}, (), False),
    ("empty spec matches all", {"match": {}}, "x", {RID: "r"}, (), True),
    ("dotted label keys", {"match": {"a.b.c": ["v"]}}, "x", {"a.b.c": "v", "a": "w"}, (), True),
    ("quote in value", {"match": {"q": ['say "hi"']}}, "x", {"q": 'say "hi"'}, (), True),
    ("escape in value vs glob", {"match": {"q": ["*n"]}}, "x", {"q": "a\n"}, (), False),
    ("backslash value", {"match": {"q": ["a\\*"]}}, "x", {"q": "a\\b"}, (), True),
    ("percent literal", {"match": {"q": ["50%*"]}}, "x", {"q": "50%off"}, (), True),
    (
        "regex specials literal",
        {"match": {"q": ["a.(b)+{c}|d*"]}},
        "x",
        {"q": "a.(b)+{c}|d!"},
        (),
        True,
    ),
    ("regex specials not regex", {"match": {"q": ["a.c"]}}, "x", {"q": "abc"}, (), False),
    ("emoji", {"match": {"q": ["\U0001f600?"]}}, "x", {"q": "\U0001f600\U0001f600"}, (), True),
    # event names: only * is a wildcard and it needs >= 1 char; full match
    ("name exact", {"expect": ["a.b"]}, "a.b", {RID: "r"}, (), True),
    ("name exact is full", {"expect": ["a.b"]}, "a.bc", {RID: "r"}, (), False),
    ("name star", {"expect": ["a.*"]}, "a.b", {RID: "r"}, (), True),
    ("name star needs a char", {"expect": ["animal.*ed"]}, "animal.ed", {RID: "r"}, (), False),
    ("name star inner", {"expect": ["animal.*ed"]}, "animal.walked", {RID: "r"}, (), True),
    (
        "name question mark literal",
        {"expect": ["animal.w?lked"]},
        "animal.walked",
        {RID: "r"},
        (),
        False,
    ),
    (
        "name bracket literal",
        {"expect": ["animal.[wx]alked"]},
        "animal.walked",
        {RID: "r"},
        (),
        False,
    ),
    (
        "name plus label",
        {"expect": ["a.*"], "match": {RID: ["r.*"]}},
        "a.b",
        {RID: "r.1"},
        (),
        True,
    ),
    (
        "name ok label miss",
        {"expect": ["a.*"], "match": {RID: ["r.*"]}},
        "a.b",
        {RID: "q"},
        (),
        False,
    ),
    (
        "after pattern covers",
        {"expect": ["b"], "after": ["a"], "match": {RID: ["r"]}},
        "a",
        {RID: "r"},
        (),
        True,
    ),
    # match_related
    (
        "related dict one resource",
        {"related": [{ROLE: ["flow"], RID: ["f.1"]}]},
        "x",
        {RID: "r"},
        [{ROLE: "flow", RID: "f.1"}],
        True,
    ),
    (
        "related dict needs one resource for all labels",
        {"related": [{ROLE: ["flow"], RID: ["f.1"]}]},
        "x",
        {RID: "r"},
        [{ROLE: "flow", RID: "f.2"}, {ROLE: "tag", RID: "f.1"}],
        False,
    ),
    (
        "related list each by some resource",
        {"related": [{ROLE: ["tag"], RID: ["t.bronze"]}, {ROLE: ["tag"], RID: ["t.prod"]}]},
        "x",
        {RID: "r"},
        [{ROLE: "tag", RID: "t.prod"}, {ROLE: "tag", RID: "t.bronze"}],
        True,
    ),
    (
        "related list miss",
        {"related": [{ROLE: ["tag"], RID: ["t.bronze"]}, {ROLE: ["tag"], RID: ["t.prod"]}]},
        "x",
        {RID: "r"},
        [{ROLE: "tag", RID: "t.prod"}],
        False,
    ),
    (
        "related with no related resources",
        {"related": [{ROLE: ["flow"]}]},
        "x",
        {RID: "r"},
        (),
        False,
    ),
    (
        "related negation some other tag",
        {"related": [{ROLE: ["tag"], RID: ["!t.dev"]}]},
        "x",
        {RID: "r"},
        [{ROLE: "tag", RID: "t.dev"}, {ROLE: "tag", RID: "t.x"}],
        True,
    ),
    ("related empty dict matches", {"related": [{}]}, "x", {RID: "r"}, (), True),
    (
        "related and primary",
        {"match": {RID: ["r"]}, "related": [{ROLE: ["flow"]}]},
        "x",
        {RID: "r"},
        [{ROLE: "flow", RID: "f"}],
        True,
    ),
]


def _run(
    kwargs: dict[str, Any],
    name: str,
    res: Mapping[str, str],
    rel: Sequence[Mapping[str, str]],
    *,
    seal: bool,
) -> bool:
    m = ReteMatcher(seal_min_rules=10**6, seal_after_batches=10**6)
    kwargs = dict(kwargs)
    kwargs.setdefault("expect", [name] if "expect" not in kwargs else kwargs["expect"])
    t = trig("t", **kwargs)
    m.load("a", [t])
    if seal:
        m.flush()
        assert m.pending_rules == 0
    ev = event(name, res, rel)
    touches = m.match_batch([ev])[0]
    assert touches == reference_touches([("a", [t])], ev)
    assert m.held_facts() == 0
    return bool(touches)


@pytest.mark.parametrize("seal", [True, False], ids=["rete", "pending"])
@pytest.mark.parametrize(
    ("kwargs", "name", "res", "rel", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matching_rule(
    kwargs: dict[str, Any],
    name: str,
    res: Mapping[str, str],
    rel: Sequence[Mapping[str, str]],
    expected: bool,
    seal: bool,
) -> None:
    assert _run(kwargs, name, res, rel, seal=seal) is expected


def test_exact_conditions_are_decided_by_the_rete_alone() -> None:
    m = ReteMatcher()
    m.load(
        "a", [trig("t", expect=["x"], match={RID: ["a.*", "b"], "env": ["!prod"], "c": ["a?c"]})]
    )
    m.flush()
    out = m.match_batch(
        [
            event("x", {RID: "a.1", "env": "dev", "c": "abc"}),
            event("x", {RID: "a.1", "env": "prod", "c": "abc"}),
        ]
    )
    assert [len(t) for t in out] == [1, 0]
    assert m.stats.python_checks == 0
    assert m.stats.posts == 2 and m.stats.shard_posts == 1


def test_unsafe_values_take_the_python_path() -> None:
    m = ReteMatcher()
    m.load("a", [trig("t", expect=["x"], match={"q": ["a?"]})])
    m.flush()
    out = m.match_batch([event("x", {"q": 'a"'}), event("x", {"q": "ab"})])
    assert [len(t) for t in out] == [1, 1]
    assert m.stats.posts == 1


def test_touch_flags_for_after_and_expect() -> None:
    m = ReteMatcher()
    t = trig("t", expect=["run.*"], after=["run.started"], match={RID: ["r"]})
    m.load("a", [t])
    m.flush()
    started, done = m.match_batch([event("run.started", {RID: "r"}), event("run.done", {RID: "r"})])
    assert (started[0].after, started[0].expect) == (True, True)
    assert (done[0].after, done[0].expect) == (False, True)


def test_touches_ordered_by_load_order_then_position() -> None:
    m = ReteMatcher()
    m.load("b", [trig("b1", expect=["x", "y*"], match={RID: ["r"]}), trig("b2", expect=["x"])])
    m.load("a", [trig("a1", expect=["x"], match={RID: ["r*"]}), trig("a2", expect=["*"])])
    m.flush()
    out = m.match_batch([event("x", {RID: "r"})])[0]
    assert [t.trigger.id for t in out] == ["b1", "b2", "a1", "a2"]


def test_huge_values_are_not_truncated() -> None:
    # durable passes string lengths as 16-bit integers: a 65,536-byte value would compare as ""
    m = ReteMatcher()
    m.load("a", [trig("t", expect=["x"], match={"k": ["abc"], "j": ["ab?"]})])
    m.flush()
    huge = "abc" + "x" * 65_533
    out = m.match_batch([event("x", {"k": huge, "j": "abc"}), event("x", {"k": "abc", "j": huge})])
    assert out == [[], []]


def test_specs_with_more_labels_than_a_rule_tests_are_rechecked() -> None:
    m = ReteMatcher()
    spec = {f"label.{i:02d}": [f"v{i}"] for i in range(40)}
    m.load("a", [trig("t", expect=["x"], match=spec)])
    m.flush()
    good = {f"label.{i:02d}": f"v{i}" for i in range(40)}
    bad = dict(good, **{"label.39": "nope"})
    assert [len(t) for t in m.match_batch([event("x", good), event("x", bad)])] == [1, 0]
