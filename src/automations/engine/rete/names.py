"""The name index in front of the rete: which loaded triggers an event name covers, and how.

Pure (no durable_rules). Each distinct event name is resolved once (cached, bounded) to the
triggers it covers, with their ``after``/``expect`` flags, exactly as Prefect does: an
``fnmatchcase`` index over ``expect | after`` (or ``*``), then the escaped regex with ``*`` as
``.+`` matched at the start. Exact names go through a dict, patterns through a dict of their
literal prefixes (one lookup per distinct prefix length), so an event only reaches the shards
holding rules of triggers its name covers (see ``docs/design/rete.md``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from automations.domain import triggers
from automations.engine import matching
from automations.engine.rete import compiler, packing, stats

CACHE_LIMIT = 65_536
"""Distinct event names remembered; the cache is emptied when it is full."""
MAX_VALUE_CHARS = 16_000
"""durable passes string lengths as 16-bit integers (``reduceString``, ``evaluateRegex``): an
event whose label values total more characters than this (4 UTF-8 bytes each, at most) takes the
Python path, and longer event names are never compiled or posted."""

_fnmatch = fnmatch.fnmatchcase


class Entry:
    """One loaded event trigger."""

    __slots__ = (
        "automation_id",
        "trigger",
        "order",
        "index_patterns",
        "regex",
        "after",
        "expect",
        "rules",
        "spec",
        "never",
        "related",
        "touches",
    )

    def __init__(
        self, automation_id: str, trigger: triggers.EventTrigger, order: tuple[int, int]
    ) -> None:
        self.automation_id = automation_id
        self.trigger = trigger
        self.order = order
        self.after = trigger.after
        self.expect = trigger.expect
        if not trigger.expect:
            self.index_patterns: tuple[str, ...] = ("*",)
        else:
            self.index_patterns = tuple(sorted(set(trigger.expect) | set(trigger.after)))
        self.regex: re.Pattern[str] | None = None  # compiled on first use
        self.spec = compiler.canonical_spec(trigger.match)
        self.never = compiler.spec_is_unsatisfiable(self.spec)
        self.related = tuple(compiler.canonical_spec(s) for s in trigger.match_related if s)
        self.rules: tuple[packing.Rule, ...] = ()
        self.touches = {
            (a, e): matching.Touch(automation_id, trigger, a, e)
            for a in (False, True)
            for e in (False, True)
        }

    def name_flags(self, name: str) -> tuple[bool, bool] | None:
        """Prefect's name part of ``covers`` plus (starts_after, expects); None if not covered."""
        if not any(_fnmatch(name, p) for p in self.index_patterns):
            return None
        if self.regex is None:
            if not self.expect:
                self.regex = re.compile(".+")
            else:
                self.regex = re.compile(
                    "|".join(re.escape(p).replace("\\*", ".+") for p in self.index_patterns)
                )
        if self.regex.match(name) is None:
            return None
        after = any(compiler.label_pattern_matches(p, name) for p in self.after)
        expect = not self.expect or any(
            compiler.label_pattern_matches(p, name) for p in self.expect
        )
        return after, expect


def glob_prefix(pattern: str) -> str | None:
    """The literal prefix of an fnmatch pattern before its first ``*?[``; None if it has none."""
    for i, c in enumerate(pattern):
        if c in "*?[":
            return pattern[:i]
    return None


Fired = tuple[tuple[int, int], matching.Touch, Entry, bool]
"""A trigger reached through a fired rule: (order, touch, entry, needs a Python check)."""


class Candidates:
    """What one event name resolves to (cached per name).

    Attributes:
        plain: Covered triggers decided without the rete (empty ``match``, or rules still
            pending), in touch order.
        by_rule: Covered triggers with sealed rules, by rule number: work per event is then
            proportional to the rules that fired, not to the triggers the name covers.
        sealed: The triggers of ``by_rule``, in touch order (for events on the Python path).
        shards: The shards to post an event of this name to.
        dedup: A trigger may be reached through several of its rules (count it once).
        unsafe: The name itself sends its events down the Python path.
    """

    __slots__ = ("plain", "by_rule", "sealed", "shards", "dedup", "unsafe")

    def __init__(
        self,
        plain: tuple[tuple[Entry, matching.Touch], ...],
        by_rule: dict[int, tuple[Fired, ...]],
        sealed: tuple[tuple[Entry, matching.Touch], ...],
        shards: tuple[packing.Shard, ...],
        dedup: bool,
        unsafe: bool,
    ) -> None:
        self.plain = plain
        self.by_rule = by_rule
        self.sealed = sealed
        self.shards = shards
        self.dedup = dedup
        self.unsafe = unsafe


NO_CANDIDATES = Candidates((), {}, (), (), False, False)
"""What a name no loaded trigger covers resolves to."""


class NameIndex:
    """Loaded triggers by the names they cover, and the per-name cache of :class:`Candidates`.

    Args:
        counters: Where the name checks are counted.

    Attributes:
        cache: Event name to what it resolves to; read it first, call :meth:`resolve` on a miss.
            Always the same dict (emptied, never replaced), so callers may hold on to it.
    """

    def __init__(self, counters: stats.ReteStats) -> None:
        self.counters = counters
        self.exact: dict[str, list[Entry]] = {}
        self.wild: dict[str, list[Entry]] = {}  # by the literal prefix of a pattern
        self.wild_lengths: dict[int, int] = {}  # prefix length -> how many prefixes
        self.cache: dict[str, Candidates] = {}

    def add(self, entries: Iterable[Entry]) -> None:
        """Indexes ``entries`` under their name patterns (the cache must be cleared after)."""
        for entry in entries:
            for p in entry.index_patterns:
                prefix = glob_prefix(p)
                if prefix is None:
                    self.exact.setdefault(p, []).append(entry)
                    continue
                listed = self.wild.get(prefix)
                if listed is None:
                    self.wild[prefix] = [entry]
                    self.wild_lengths[len(prefix)] = self.wild_lengths.get(len(prefix), 0) + 1
                elif entry not in listed:
                    listed.append(entry)

    def remove(self, entries: Iterable[Entry]) -> None:
        """Unindexes ``entries`` (the cache must be cleared after)."""
        entries = list(entries)
        gone = {id(e) for e in entries}
        for entry in entries:
            for p in entry.index_patterns:
                prefix = glob_prefix(p)
                index = self.exact if prefix is None else self.wild
                key = p if prefix is None else prefix
                listed = index.get(key)
                if listed is None:
                    continue
                kept = [e for e in listed if id(e) not in gone]
                if kept:
                    index[key] = kept
                    continue
                del index[key]
                if prefix is not None:
                    left = self.wild_lengths[len(prefix)] - 1
                    if left:
                        self.wild_lengths[len(prefix)] = left
                    else:
                        del self.wild_lengths[len(prefix)]

    def resolve(self, name: str) -> Candidates:
        """Resolves ``name`` against the loaded triggers and caches the result."""
        found: dict[int, Entry] = {}
        for entry in self.exact.get(name, ()):
            found[id(entry)] = entry
        wild = self.wild
        for length in self.wild_lengths:  # one dict lookup per distinct prefix length
            if length <= len(name):
                for entry in wild.get(name[:length], ()):
                    found[id(entry)] = entry
        plain: list[tuple[Entry, matching.Touch]] = []
        sealed: list[tuple[Entry, matching.Touch]] = []
        by_rule: dict[int, list[Fired]] = {}
        shards: dict[int, packing.Shard] = {}
        dedup = False
        self.counters.name_checks += len(found)
        for entry in sorted(found.values(), key=lambda e: e.order):
            flags = entry.name_flags(name)
            if flags is None or entry.never:
                continue
            touch = entry.touches[flags]
            if entry.rules and all(r.shard is not None for r in entry.rules):
                sealed.append((entry, touch))
                dedup = dedup or len(entry.rules) > 1
                for rule in entry.rules:
                    assert rule.shard is not None and rule.compiled is not None
                    shards[id(rule.shard)] = rule.shard
                    check = not rule.compiled.exact or bool(entry.related)
                    by_rule.setdefault(rule.number, []).append((entry.order, touch, entry, check))
            else:
                plain.append((entry, touch))
        if len(self.cache) >= CACHE_LIMIT:
            self.cache.clear()
        if not plain and not sealed:
            result = NO_CANDIDATES
        else:
            result = Candidates(
                tuple(plain),
                {number: tuple(items) for number, items in by_rule.items()},
                tuple(sealed),
                tuple(shards.values()),
                dedup,
                compiler.is_unsafe(name) or len(name) > MAX_VALUE_CHARS,
            )
        self.cache[name] = result
        return result
