"""ReteMatcher: the :class:`~automations.engine.matching.Matcher` on durable_rules' C core.

The only module of the project that imports durable_rules, and it drives the C module
``durable_rules_engine`` directly (its Python ``Host`` costs about 4x the rete). How one batch runs:

1. **Name index, in front.** Each distinct event name is resolved once (cached, bounded) to the
   triggers it covers, with their ``after``/``expect`` flags, exactly as Prefect does (an
   ``fnmatchcase`` index over ``expect | after`` or ``*``, then the escaped regex with ``*`` as
   ``.+`` matched at the start). Exact names go through a dict, patterns through a dict of their
   literal prefixes (one lookup per distinct prefix length). An event only reaches the shards holding rules of triggers its name covers:
   10,000 loaded automations do not make an unrelated event any more expensive.
2. **Rete.** Triggers with a ``match`` spec have rules (``compiler``), one per distinct (name
   pattern, spec), packed into *shards*: bounded rulesets (``max_rules`` rules, ``max_names``
   distinct name tests, 48 of the 64 alpha paths one fact may match at once, 200 label fields of
   the 255 properties a fact may have). For each shard reached, the chunk's events go in as *facts* (an event is
   consumed by one rule only; a fact fires every rule it matches) carrying the name and only the
   label fields that shard reads: one ``assert_facts`` per shard and chunk of at most 500 events,
   then ``start_action`` / ``complete_and_start_action`` until drained, then ``retract_facts`` of
   what fired (a fact that matched no rule is not stored). No action callables exist at all: the
   drain loop only records (rule, fact) pairs.
3. **Python, after.** Relaxed rules (``exact=False``) are re-checked, ``match_related`` specs are
   checked on the survivors, and triggers whose rules are not in a live shard yet are checked in
   Python (see lifecycle). Events carrying strings durable would see in escaped form (``is_unsafe``)
   or past its 16-bit string lengths take the Python path too.

durable_rules' crash paths, and how they are avoided:

* One sid only: no message ever carries ``sid`` (all state is the default sid ``"0"``), so the
  1024-sid cap and hash-colliding sids cannot occur; ``delete_state`` is never called; no timers.
  ``_Engine`` is the one gateway to the C module and exposes nothing else.
* Unique message ids, ``"{j:03d}-{seq}"``: ``seq`` is unique per (chunk, shard) post and ``j`` the
  fact's position in it. The 500 prefixes have pairwise distinct FNV-1a hashes (checked at import),
  and FNV-1a applied to a common suffix is a bijection, so the ids held at one time (one post) can
  never collide in durable's 32-bit message index. Should an id still be reported as already
  observed, that post's events are matched in Python instead.
* One thread: every C call goes through ``_Engine``, which binds to the first thread that uses the
  matcher (any public method) and raises on any other. ``SingleThreadMatcher`` is the facade for
  callers on several threads: it runs everything on one dedicated worker.

Lifecycle, and the bounded leak. durable rulesets are immutable and cannot be deleted safely, so:

* ``load`` and ``unload`` never touch durable. New rules start *pending*: triggers whose rules are
  pending are matched in Python (exactly). A ``match_batch`` seals pending rules into **new**
  shards when there are at least ``seal_min_rules`` of them or the oldest has waited
  ``seal_after_batches`` batches (``flush()`` forces it). Sealing never rebuilds a live ruleset.
* ``unload`` only drops the Python references: a rule no trigger uses is *dead*; it stays in its
  ruleset, its firings are ignored, and events are not routed to a shard for it.
* A shard is **retired** when at least half of its rules and at least ``retire_min_dead`` are dead,
  or, for compaction, when more than ``max_small_shards`` shards are a quarter full or less (in
  rules and in name tests). Its live rules go back to pending and are resealed together; the
  retired ruleset is abandoned: never posted to again, never deleted (``delete_ruleset`` frees
  little and is one of durable's crash paths). It holds no messages (every fact is retracted), so
  what leaks is its rule network and one sid state: measured about 200 KB + 30 KB per rule
  (``bench/rete_match.py --leak``), i.e. up to ~8 MB for a full 256-rule shard.
  Bound: a dead-ratio retirement needs ``max(retire_min_dead, rules / 2)`` unloaded rules, so it
  leaks at most ~60 KB per unloaded rule (200 KB / 16 + 2 x 30 KB); a compaction abandons the
  small shards only once there are more than ``max_small_shards`` of them, each under
  ``max_rules / 4`` rules (~2 MB), and each made by a seal or left by unloads.
  ``stats.rulesets_abandoned`` counts them. Process-wide, durable allows 131,071 rulesets
  (``MAX_HANDLES``). A service with heavy automation churn should restart (or re-create its
  matcher in a fresh process) when the count grows large; the matcher cannot free them safely.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fnmatch
import itertools
import json
import logging
import operator
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from automations.domain import events, triggers
from automations.engine import matching
from automations.engine.rete import compiler

_log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK = 500
"""Events per ``assert_facts`` call (durable's message index has 512 buckets)."""
_ID_PREFIXES = tuple(f"{j:03d}-" for j in range(CHUNK))
if len({compiler.fnv1a32(p) for p in _ID_PREFIXES}) != CHUNK:  # pragma: no cover - a constant
    raise RuntimeError("message-id prefixes collide under FNV-1a")

_POSITIONS = {f"{j:03d}": j for j in range(CHUNK)}
"""A fact's position in its post, from the first three characters of its id."""

_RULESET_SERIAL = itertools.count(1)
"""Ruleset names are unique in the process (durable's handles are process-wide)."""
_NAME_CACHE_LIMIT = 65_536
_MAX_VALUE_CHARS = 16_000
"""durable passes string lengths as 16-bit integers (``reduceString``, ``evaluateRegex``): an
event whose label values total more characters than this (4 UTF-8 bytes each, at most) takes the
Python path, and longer event names are never compiled or posted."""
_EVENT_NAME = operator.attrgetter("event")
_ERR_EVENT_OBSERVED = 2


class _Engine:
    """The one gateway to ``durable_rules_engine``, bound to one thread.

    Exposes only what the matcher needs: no sids, no timers, no ``delete_state``/``delete_ruleset``.

    Args:
        module: The C module (tests pass a recording proxy).
    """

    def __init__(self, module: Any = None) -> None:
        if module is None:
            import durable_rules_engine

            module = durable_rules_engine
        self._m = module
        self._owner: int | None = None
        self.calls = 0

    def check_thread(self) -> None:
        """Binds to the calling thread on first use; raises on any other thread afterwards."""
        ident = threading.get_ident()
        if self._owner is None:
            self._owner = ident
        elif ident != self._owner:
            raise RuntimeError("durable_rules used from a second thread")

    def _check(self) -> None:
        self.check_thread()
        self.calls += 1

    @property
    def error(self) -> type[Exception]:
        """The C module's exception type."""
        err: type[Exception] = self._m.error
        return err

    def create_ruleset(self, name: str, definition: str) -> int:
        """Creates a ruleset and returns its handle."""
        self._check()
        handle: int = self._m.create_ruleset(name, definition)
        return handle

    def assert_facts(self, handle: int, facts: str) -> int:
        """Asserts a JSON array of facts; returns durable's result code (1: some unmatched)."""
        self._check()
        result = self._m.assert_facts(handle, facts)
        return int(result[0])

    def retract_facts(self, handle: int, facts: str) -> None:
        """Retracts a JSON array of ``{"id": ...}`` facts."""
        self._check()
        self._m.retract_facts(handle, facts)

    def drain(self, handle: int) -> list[str]:
        """Returns every pending action message, completing each (no callbacks run)."""
        self._check()
        out: list[str] = []
        start = self._m.start_action
        complete = self._m.complete_and_start_action
        while True:
            result = start(handle)
            if not result:
                return out
            state_handle = result[2]
            message: str | None = result[1]
            while message:
                out.append(message)
                message = complete(handle, state_handle)

    def get_facts(self, handle: int) -> list[Any]:
        """Returns the facts held (of the one sid); for tests and checks."""
        self._check()
        try:
            facts: list[Any] = json.loads(self._m.get_facts(handle, "0"))
        except self._m.error:  # the sid is created by the first post (error 309 before)
            return []
        return facts


# --- the model: rules, shards, loaded triggers ---


class _Rule:
    """One rete rule, shared by every trigger with the same (name pattern, spec)."""

    __slots__ = ("key", "number", "compiled", "shard", "refs", "pending_since")

    def __init__(self, key: compiler.RuleKey, number: int) -> None:
        self.key = key
        self.number = number
        self.compiled: compiler.Rule | None = None
        self.shard: _Shard | None = None
        self.refs = 0
        self.pending_since = 0


class _Shard:
    """One durable ruleset holding a bounded set of rules."""

    __slots__ = ("name", "handle", "rules", "fields", "names", "dead", "retired")

    def __init__(self, name: str) -> None:
        self.name = name
        self.handle = 0
        self.rules: dict[int, _Rule] = {}
        self.fields: tuple[tuple[str, str], ...] = ()
        self.names = 0
        self.dead = 0
        self.retired = False


@dataclasses.dataclass(slots=True)
class _Group:
    """An upper bound of the alpha paths one fact can match among rules sharing a name test.

    Rules whose first label test is one literal equality on the same label and different values
    are exclusive: only the heaviest value counts. All other rules may match together.
    """

    free: int = 0
    keyed: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    best: dict[str, int] = dataclasses.field(default_factory=dict)
    total: int = 0

    def total_with(self, rule: compiler.Rule) -> int:
        if rule.first_literal is None:
            return self.total + rule.weight
        label = rule.first_literal[0]
        grown = self.keyed.get(rule.first_literal, 0) + rule.weight
        best = self.best.get(label, 0)
        return self.total - best + max(best, grown)

    def add(self, rule: compiler.Rule) -> None:
        new_total = self.total_with(rule)
        if rule.first_literal is None:
            self.free += rule.weight
        else:
            grown = self.keyed.get(rule.first_literal, 0) + rule.weight
            self.keyed[rule.first_literal] = grown
            label = rule.first_literal[0]
            self.best[label] = max(self.best.get(label, 0), grown)
        self.total = new_total


@dataclasses.dataclass(slots=True)
class _Pack:
    """Capacity accounting while packing rules into one new shard.

    The alpha-stack bound (``max_weight``): a fact named X can match the paths of X's group, of
    every pattern group (their regexes may all match) and of the any-name group. Groups are keyed
    by name pattern (one name test node each; ``None``: no name test).
    """

    rules: list[_Rule] = dataclasses.field(default_factory=list)
    labels: set[str] = dataclasses.field(default_factory=set)
    width: int = 0
    groups: dict[str | None, _Group] = dataclasses.field(default_factory=dict)
    wild: int = 0  # the sum of the totals of the pattern and any-name groups
    max_exact: int = 0  # the largest total of an exact-name group

    def fits(self, rule: compiler.Rule, limits: _Limits) -> bool:
        if len(self.rules) >= limits.max_rules or self.width + rule.width > limits.max_width:
            return False
        pattern = rule.key.name_pattern
        group = self.groups.get(pattern)
        if group is None and len(self.groups) >= limits.max_names:
            return False
        if len(self.labels | rule.labels) > limits.max_fields:
            return False
        group = group or _Group()
        grown = group.total_with(rule)
        if rule.name_exact is not None:
            return grown + self.wild <= limits.max_weight
        return self.max_exact + self.wild - group.total + grown <= limits.max_weight

    def add(self, rule: _Rule, compiled: compiler.Rule) -> None:
        self.rules.append(rule)
        self.labels |= compiled.labels
        self.width += compiled.width
        group = self.groups.setdefault(compiled.key.name_pattern, _Group())
        before = group.total
        group.add(compiled)
        if compiled.name_exact is not None:
            self.max_exact = max(self.max_exact, group.total)
        else:
            self.wild += group.total - before


@dataclasses.dataclass(frozen=True, slots=True)
class _Limits:
    max_rules: int
    max_names: int
    max_width: int = 400
    max_fields: int = 200
    max_weight: int = 48


class _Entry:
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
        self.rules: tuple[_Rule, ...] = ()
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


_fnmatch = fnmatch.fnmatchcase


def _glob_prefix(pattern: str) -> str | None:
    """The literal prefix of an fnmatch pattern before its first ``*?[``; None if it has none."""
    for i, c in enumerate(pattern):
        if c in "*?[":
            return pattern[:i]
    return None


def _first(item: tuple[tuple[int, int], matching.Touch]) -> tuple[int, int]:
    return item[0]


class _Candidates:
    """What one event name resolves to (cached per name).

    Attributes:
        plain: Covered triggers decided without the rete (empty ``match``, or rules still
            pending), in touch order.
        by_rule: Covered triggers with sealed rules, by rule number: work per event is then
            proportional to the rules that fired, not to the triggers the name covers.
        sealed: The triggers of ``by_rule``, in touch order (for events on the Python path).
        shards: The shards to post an event of this name to.
    """

    __slots__ = ("plain", "by_rule", "sealed", "shards", "dedup", "unsafe")

    def __init__(
        self,
        plain: tuple[tuple[_Entry, matching.Touch], ...],
        by_rule: dict[int, tuple[_Fired, ...]],
        sealed: tuple[tuple[_Entry, matching.Touch], ...],
        shards: tuple[_Shard, ...],
        dedup: bool,
        unsafe: bool,
    ) -> None:
        self.plain = plain
        self.by_rule = by_rule
        self.sealed = sealed
        self.shards = shards
        self.dedup = dedup
        self.unsafe = unsafe


_Fired = tuple[tuple[int, int], matching.Touch, "_Entry", bool]
"""A trigger reached through a fired rule: (order, touch, entry, needs a Python check)."""


_NO_CANDIDATES = _Candidates((), {}, (), (), False, False)


@dataclasses.dataclass(slots=True)
class ReteStats:
    """Counted work (assert on these, not on timings).

    Attributes:
        events: Events matched.
        posts: Facts asserted (one per event and shard reached).
        shard_posts: ``assert_facts`` calls.
        actions: Actions drained.
        python_checks: Specs evaluated in Python (pending rules, relaxed rules, unsafe events).
        rulesets_created: Rulesets created.
        rulesets_abandoned: Rulesets retired (the bounded leak).
        fallbacks: Posts matched in Python after durable reported a problem.
        name_checks: Triggers whose name patterns were evaluated (once per distinct name).
    """

    events: int = 0
    posts: int = 0
    shard_posts: int = 0
    actions: int = 0
    python_checks: int = 0
    rulesets_created: int = 0
    rulesets_abandoned: int = 0
    fallbacks: int = 0
    name_checks: int = 0


class ReteMatcher:
    """Implements :class:`~automations.engine.matching.Matcher` on durable_rules' rete.

    Args:
        max_rules: Rules per ruleset (durable fails around 483; each alpha node holds 512).
        max_names: Distinct name tests per ruleset. durable's alpha network does not hash on
            values: a fact walks every name test of its ruleset (measured on W1 facts: 165k/s
            with 1 name besides W1's, 137k/s with 32, 63k/s with 236), so rules of unrelated
            names must not share a ruleset; rules of one name may (their label tests are only
            reached through the name's node).
        seal_min_rules: Seal pending rules into a new shard once this many are pending.
        seal_after_batches: ... or once the oldest has waited this many ``match_batch`` calls.
        retire_min_dead: A shard is retired once it has this many dead rules (and half are dead).
        max_small_shards: Compact when more shards than this are below ``max_rules / 4``.
        engine_module: The C module (tests inject a recording proxy); default the real one.
    """

    def __init__(
        self,
        *,
        max_rules: int = 256,
        max_names: int = 32,
        seal_min_rules: int = 32,
        seal_after_batches: int = 2,
        retire_min_dead: int = 16,
        max_small_shards: int = 8,
        engine_module: Any = None,
    ) -> None:
        if not 1 <= max_rules <= 400:
            raise ValueError("max_rules must be within 1..400")
        self._limits = _Limits(max_rules=max_rules, max_names=max_names)
        self._seal_min = seal_min_rules
        self._seal_after = seal_after_batches
        self._retire_min_dead = retire_min_dead
        self._max_small = max_small_shards
        self._engine = _Engine(engine_module)
        self._fields = compiler.FieldNames()
        self._by_automation: dict[str, list[_Entry]] = {}
        self._order = 0
        self._exact: dict[str, list[_Entry]] = {}
        self._wild: dict[str, list[_Entry]] = {}  # by the literal prefix of a pattern
        self._wild_lengths: dict[int, int] = {}  # prefix length -> how many prefixes
        self._rules: dict[compiler.RuleKey, _Rule] = {}
        self._rule_numbers: dict[str, _Rule] = {}  # "12" for rule r12
        self._next_rule = 1
        self._pending: dict[int, _Rule] = {}
        self._shards: list[_Shard] = []
        self._batches = 0
        self._seq = 0
        self._cache: dict[str, _Candidates] = {}
        self._dirty = False
        self.stats = ReteStats()

    # --- loading ---

    def load(self, automation_id: str, event_triggers: Sequence[triggers.EventTrigger]) -> None:
        """Adds (or replaces) the event triggers of one automation (no durable call)."""
        self._engine.check_thread()
        previous = self._by_automation.get(automation_id)
        order = previous[0].order[0] if previous else self._order
        if not previous:
            self._order += 1
        entries = [_Entry(automation_id, t, (order, k)) for k, t in enumerate(event_triggers)]
        for entry in entries:  # acquire the new rules before releasing the old ones
            if not entry.never:
                entry.rules = tuple(self._acquire(key) for key in compiler.rule_keys(entry.trigger))
        if previous is not None:
            self._drop(automation_id)
        self._by_automation[automation_id] = entries
        for entry in entries:
            for p in entry.index_patterns:
                prefix = _glob_prefix(p)
                if prefix is None:
                    self._exact.setdefault(p, []).append(entry)
                    continue
                listed = self._wild.get(prefix)
                if listed is None:
                    self._wild[prefix] = [entry]
                    self._wild_lengths[len(prefix)] = self._wild_lengths.get(len(prefix), 0) + 1
                elif entry not in listed:
                    listed.append(entry)
        self._cache.clear()

    def unload(self, automation_id: str) -> None:
        """Removes every trigger of one automation (no durable call; its rules may die)."""
        self._engine.check_thread()
        self._drop(automation_id)
        self._cache.clear()

    def _acquire(self, key: compiler.RuleKey) -> _Rule:
        rule = self._rules.get(key)
        if rule is None:
            rule = _Rule(key, self._next_rule)
            self._next_rule += 1
            self._rules[key] = rule
            self._rule_numbers[str(rule.number)] = rule
            rule.pending_since = self._batches
            self._pending[rule.number] = rule
        rule.refs += 1
        return rule

    def _release(self, rule: _Rule) -> None:
        rule.refs -= 1
        if rule.refs > 0:
            return
        del self._rules[rule.key]
        del self._rule_numbers[str(rule.number)]
        self._pending.pop(rule.number, None)
        if rule.shard is not None:
            rule.shard.dead += 1
            self._dirty = True

    def _drop(self, automation_id: str) -> None:
        entries = self._by_automation.pop(automation_id, None)
        if not entries:
            return
        gone = {id(e) for e in entries}
        for entry in entries:
            for p in entry.index_patterns:
                prefix = _glob_prefix(p)
                index = self._exact if prefix is None else self._wild
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
                    left = self._wild_lengths[len(prefix)] - 1
                    if left:
                        self._wild_lengths[len(prefix)] = left
                    else:
                        del self._wild_lengths[len(prefix)]
            for rule in entry.rules:
                self._release(rule)

    # --- shards ---

    def flush(self) -> None:
        """Seals every pending rule into shards now (calls durable: owner thread only)."""
        self._engine.check_thread()
        self._maintain(force=True)

    def _maintain(self, force: bool = False) -> None:
        self._dirty = False
        changed = False
        for shard in self._shards:
            if shard.retired:
                continue
            total = len(shard.rules)
            if shard.dead >= self._retire_min_dead and shard.dead * 2 >= total:
                self._retire(shard)
                changed = True
        # small: a quarter full both in rules and in name tests (so that merging helps)
        limits = self._limits
        small = [
            s
            for s in self._shards
            if not s.retired
            and len(s.rules) - s.dead < limits.max_rules // 4
            and s.names < limits.max_names // 4
        ]
        if len(small) > self._max_small:
            for shard in small:
                self._retire(shard)
            changed = True
        if self._pending:
            oldest = min(r.pending_since for r in self._pending.values())
            if (
                force
                or changed
                or len(self._pending) >= self._seal_min
                or self._batches - oldest >= self._seal_after
            ):
                self._seal()
                changed = True
        if changed:
            self._shards = [s for s in self._shards if not s.retired]
            self._cache.clear()

    def _retire(self, shard: _Shard) -> None:
        shard.retired = True
        if shard.handle:
            self.stats.rulesets_abandoned += 1
        for rule in shard.rules.values():
            if rule.refs > 0 and rule.shard is shard:
                rule.shard = None
                rule.pending_since = self._batches
                self._pending[rule.number] = rule

    def _seal(self) -> None:
        rules = sorted(self._pending.values(), key=lambda r: (r.key.name_pattern or "", r.number))
        self._pending.clear()
        for rule in rules:
            rule.compiled = compiler.compile_rule(rule.key, self._fields)
        packs: list[_Pack] = []
        for rule in rules:
            assert rule.compiled is not None
            for pack in reversed(packs[-4:]):
                if pack.fits(rule.compiled, self._limits):
                    pack.add(rule, rule.compiled)
                    break
            else:
                pack = _Pack()
                pack.add(rule, rule.compiled)
                packs.append(pack)
        for pack in packs:
            self._build(pack.rules)

    def _build(self, rules: list[_Rule]) -> None:
        shard = _Shard(f"rete{next(_RULESET_SERIAL)}")
        for attempt in (0, 1):
            if attempt:
                for rule in rules:  # fallback: every label test relaxed, verified in Python
                    rule.compiled = compiler.compile_rule(rule.key, self._fields, relax_all=True)
            named = [(f"r{r.number}", r.compiled) for r in rules if r.compiled is not None]
            definition = json.dumps(compiler.ruleset_definition(named), ensure_ascii=False)
            try:
                shard.handle = self._engine.create_ruleset(f"{shard.name}_{attempt}", definition)
            except self._engine.error:
                _log.exception("durable_rules rejected %s (attempt %d)", shard.name, attempt)
                continue
            self.stats.rulesets_created += 1
            break
        else:  # pragma: no cover - both attempts rejected: the rules stay on the Python path
            return
        labels = sorted({label for r in rules if r.compiled for label in r.compiled.labels})
        shard.fields = tuple((label, self._fields.field(label)) for label in labels)
        shard.names = len({rule.key.name_pattern for rule in rules})
        for rule in rules:
            shard.rules[rule.number] = rule
            rule.shard = shard
        self._shards.append(shard)

    # --- matching ---

    def _candidates(self, name: str) -> _Candidates:
        found: dict[int, _Entry] = {}
        for entry in self._exact.get(name, ()):
            found[id(entry)] = entry
        wild = self._wild
        for length in self._wild_lengths:  # one dict lookup per distinct prefix length
            if length <= len(name):
                for entry in wild.get(name[:length], ()):
                    found[id(entry)] = entry
        plain: list[tuple[_Entry, matching.Touch]] = []
        sealed: list[tuple[_Entry, matching.Touch]] = []
        by_rule: dict[int, list[_Fired]] = {}
        shards: dict[int, _Shard] = {}
        dedup = False
        self.stats.name_checks += len(found)
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
        if len(self._cache) >= _NAME_CACHE_LIMIT:
            self._cache.clear()
        if not plain and not sealed:
            result = _NO_CANDIDATES
        else:
            result = _Candidates(
                tuple(plain),
                {number: tuple(items) for number, items in by_rule.items()},
                tuple(sealed),
                tuple(shards.values()),
                dedup,
                compiler.is_unsafe(name) or len(name) > _MAX_VALUE_CHARS,
            )
        self._cache[name] = result
        return result

    def match_batch(self, batch: Sequence[events.Event]) -> list[list[matching.Touch]]:
        """Returns, for each event of ``batch`` in order, the triggers it touches."""
        self._engine.check_thread()
        self._batches += 1
        if self._pending or self._dirty:
            self._maintain()
        out: list[list[matching.Touch]] = []
        for start in range(0, len(batch), CHUNK):
            out.extend(self._match_chunk(batch[start : start + CHUNK]))
        self.stats.events += len(batch)
        return out

    def _match_chunk(self, chunk: Sequence[events.Event]) -> list[list[matching.Touch]]:
        cache = self._cache
        # Most events have a name no trigger covers, and a chunk has few distinct names: looking
        # at those first spares the per-event loop below for a chunk that touches nothing.
        for name in set(map(_EVENT_NAME, chunk)):
            cands = cache.get(name)
            if cands is None:
                cands = self._candidates(name)
            if cands.plain or cands.shards:
                break
        else:
            return [[] for _ in chunk]
        unsafe = compiler.UNSAFE.search
        resolved: list[_Candidates] = []
        posts: dict[int, tuple[_Shard, list[int]]] = {}
        python_path: set[int] = set()
        for i, event in enumerate(chunk):
            cands = cache.get(event.event)
            if cands is None:
                cands = self._candidates(event.event)
            resolved.append(cands)
            if not cands.shards:
                continue
            values = "".join(event.resource.values())
            if cands.unsafe or len(values) > _MAX_VALUE_CHARS or unsafe(values) is not None:
                python_path.add(i)
                continue
            for shard in cands.shards:
                slot = posts.get(id(shard))
                if slot is None:
                    posts[id(shard)] = (shard, [i])
                else:
                    slot[1].append(i)
        fired: dict[int, list[_Rule]] = {}
        for shard, indices in posts.values():
            self._post(shard, chunk, indices, fired, python_path)
        results: list[list[matching.Touch]] = []
        for i, event in enumerate(chunk):
            cands = resolved[i]
            touches: list[tuple[tuple[int, int], matching.Touch]] = []
            for entry, touch in cands.plain:
                if entry.rules and not self._python_spec(entry, event):
                    continue
                if entry.related and not self._related_ok(entry, event):
                    continue
                touches.append((entry.order, touch))
            if i in python_path:
                for entry, touch in cands.sealed:
                    if not self._python_spec(entry, event):
                        continue
                    if entry.related and not self._related_ok(entry, event):
                        continue
                    touches.append((entry.order, touch))
            else:
                rules = fired.get(i)
                if rules:
                    by_rule = cands.by_rule
                    seen: set[int] | None = set() if cands.dedup else None
                    for rule in rules:
                        items = by_rule.get(rule.number)
                        if items is None:
                            continue
                        for item in items:
                            entry = item[2]
                            if seen is not None:
                                if id(entry) in seen:
                                    continue
                                seen.add(id(entry))
                            if item[3] and not self._check(entry, rule, event):
                                continue
                            touches.append((item[0], item[1]))
            if len(touches) > 1:
                touches.sort(key=_first)
            results.append([touch for _, touch in touches])
        return results

    def _check(self, entry: _Entry, rule: _Rule, event: events.Event) -> bool:
        """The Python part for a trigger whose rule fired: a relaxed spec, ``match_related``."""
        assert rule.compiled is not None
        if not rule.compiled.exact and not self._python_spec(entry, event):
            return False
        return not entry.related or self._related_ok(entry, event)

    def _python_spec(self, entry: _Entry, event: events.Event) -> bool:
        self.stats.python_checks += 1
        return compiler.spec_holds(entry.spec, event.resource)

    def _related_ok(self, entry: _Entry, event: events.Event) -> bool:
        self.stats.python_checks += 1
        for spec in entry.related:
            for labels in event.related:
                if compiler.spec_holds(spec, labels):
                    break
            else:
                return False
        return True

    def _post(
        self,
        shard: _Shard,
        chunk: Sequence[events.Event],
        indices: list[int],
        fired: dict[int, list[_Rule]],
        python_path: set[int],
    ) -> None:
        self._seq += 1
        suffix = str(self._seq)
        fields = shard.fields
        facts: list[dict[str, str]] = []
        for j, i in enumerate(indices):
            event = chunk[i]
            fact = {"id": _ID_PREFIXES[j] + suffix, "n": event.event}
            resource = event.resource
            for label, field in fields:
                value = resource.get(label)
                if value is not None:
                    fact[field] = value
            facts.append(fact)
        engine = self._engine
        self.stats.posts += len(facts)
        self.stats.shard_posts += 1
        try:
            code = engine.assert_facts(shard.handle, json.dumps(facts, ensure_ascii=False))
        except engine.error:
            _log.exception("durable_rules failed a post to %s; Python fallback", shard.name)
            code = _ERR_EVENT_OBSERVED
        messages = engine.drain(shard.handle)
        self.stats.actions += len(messages)
        retract: set[int] = set()
        numbers = self._rule_numbers
        positions = _POSITIONS
        for message in messages:
            # '{"r<rule>":{"m":{"id": "<jjj>-<seq>", ...}}}': durable echoes the fact verbatim
            end = message.find('"', 3)
            j = positions.get(message[end + 15 : end + 18], -1)
            if j < 0:  # pragma: no cover - durable's action format is fixed
                raise RuntimeError(f"unexpected durable action: {message[:80]}")
            retract.add(j)
            rule = numbers.get(message[3:end])
            if rule is not None and rule.shard is shard:
                i = indices[j]
                listed = fired.get(i)
                if listed is None:
                    fired[i] = [rule]
                elif rule not in listed:  # an $or can fire one rule once per alternative
                    listed.append(rule)
        if code == _ERR_EVENT_OBSERVED:
            self.stats.fallbacks += 1
            python_path.update(indices)
            retract.update(range(len(indices)))
        if retract:
            engine.retract_facts(
                shard.handle,
                json.dumps([{"id": _ID_PREFIXES[j] + suffix} for j in sorted(retract)]),
            )

    # --- introspection (tests, bench) ---

    def held_facts(self) -> int:
        """Facts held across all live shards (always 0 between batches)."""
        return sum(len(self._engine.get_facts(s.handle)) for s in self._shards if s.handle)

    @property
    def shard_count(self) -> int:
        """Live shards (rulesets in use)."""
        return len(self._shards)

    @property
    def pending_rules(self) -> int:
        """Rules not yet sealed into a shard (matched in Python meanwhile)."""
        return len(self._pending)

    def shard_sizes(self) -> list[tuple[int, int]]:
        """(rules, dead rules) per live shard."""
        return [(len(s.rules), s.dead) for s in self._shards]


class SingleThreadMatcher:
    """Runs a :class:`ReteMatcher` on one dedicated thread, for callers on any thread.

    Every call (``load``, ``unload``, ``match_batch``, ``flush``) is submitted to a single-worker
    executor and waited for, so all durable_rules calls happen on that worker.

    Args:
        matcher: The matcher to own; a default one when omitted.
    """

    def __init__(self, matcher: ReteMatcher | None = None) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="durable-rules"
        )
        self._matcher = matcher if matcher is not None else self._run(ReteMatcher)

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return self._executor.submit(fn, *args).result()

    @property
    def matcher(self) -> ReteMatcher:
        """The owned matcher (call it only through this facade)."""
        return self._matcher

    def load(self, automation_id: str, event_triggers: Sequence[triggers.EventTrigger]) -> None:
        """See :meth:`ReteMatcher.load`."""
        self._run(self._matcher.load, automation_id, event_triggers)

    def unload(self, automation_id: str) -> None:
        """See :meth:`ReteMatcher.unload`."""
        self._run(self._matcher.unload, automation_id)

    def match_batch(self, batch: Sequence[events.Event]) -> list[list[matching.Touch]]:
        """See :meth:`ReteMatcher.match_batch`."""
        return self._run(self._matcher.match_batch, batch)

    def flush(self) -> None:
        """See :meth:`ReteMatcher.flush`."""
        self._run(self._matcher.flush)

    def close(self) -> None:
        """Stops the worker thread."""
        self._executor.shutdown(wait=True)


def _conforms(rete: ReteMatcher, facade: SingleThreadMatcher) -> list[matching.Matcher]:
    """Type-checked only: both classes implement the Matcher protocol."""
    return [rete, facade]
