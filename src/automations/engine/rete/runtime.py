"""ReteMatcher: the :class:`~automations.engine.matching.Matcher` on durable_rules' C core.

One batch: the name index (``names``) resolves each distinct event name to the triggers it covers;
triggers with a ``match`` spec have rules packed into bounded rulesets (``packing``, sealed and
retired by ``lifecycle``); each chunk of events is posted once per shard it reaches (``batches``,
through ``_gateway``, the only caller of durable_rules); then relaxed rules, ``match_related`` and
pending rules are checked in Python. ``load``/``unload`` never call durable; rulesets are never
deleted, only abandoned (counted in ``stats.rulesets_abandoned``). An isolated matcher runs
durable in a worker process (``_process_gateway``) and replaces it, live rulesets recreated, once
the abandoned ones would hold more memory than the live ones: its memory stays flat under churn.
The design, the crash paths it avoids and the leak's bound: ``docs/design/rete.md``.
"""

from __future__ import annotations

import itertools
import json
import logging
import operator
from collections.abc import Sequence
from typing import Any

from automations.domain import events, triggers
from automations.engine import matching
from automations.engine.rete import (
    _gateway,
    _process_gateway,
    batches,
    compiler,
    lifecycle,
    names,
    packing,
    stats,
)

_log = logging.getLogger(__name__)

_RULESET_SERIAL = itertools.count(1)
"""Ruleset names are unique in the process (durable's handles are process-wide)."""
_EVENT_NAME = operator.attrgetter("event")
_RULESET_KB = 200
"""Estimated memory of a ruleset besides its rules (``bench/rete_match.py --leak``)."""
_RULE_KB = 30
"""Estimated memory of one rule in a ruleset."""


def _first(item: tuple[tuple[int, int], matching.Touch]) -> tuple[int, int]:
    return item[0]


class ReteMatcher:
    """Implements :class:`~automations.engine.matching.Matcher` on durable_rules' rete.

    Every call must come from one thread (the first to call it); see ``docs/design/rete.md``.

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
        isolate: Run durable_rules in a worker process, replaced (its live rulesets recreated in
            the next one) once the rulesets it abandoned would hold more than ``recycle_min_kb``
            and more than the live ones; also replaced, the same way, if it dies.
        recycle_min_kb: See ``isolate``: the estimated memory of abandoned rulesets below which
            a worker is never replaced.
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
        isolate: bool = False,
        recycle_min_kb: int = 32 * 1024,
    ) -> None:
        if not 1 <= max_rules <= 400:
            raise ValueError("max_rules must be within 1..400")
        self.stats = stats.ReteStats()
        self._isolate = isolate
        self._recycle_min_kb = recycle_min_kb
        self._engine: _gateway.DurableGateway = (
            _process_gateway.ProcessGateway() if isolate else _gateway.Gateway(engine_module)
        )
        self._abandoned_before = (0, 0)
        self._fields = compiler.FieldNames()
        self._book = lifecycle.RuleBook(
            packing.Limits(max_rules=max_rules, max_names=max_names),
            self._fields,
            self.stats,
            seal_min_rules=seal_min_rules,
            seal_after_batches=seal_after_batches,
            retire_min_dead=retire_min_dead,
            max_small_shards=max_small_shards,
        )
        self._names = names.NameIndex(self.stats)
        self._poster = batches.Poster(self._engine, self._book.by_number, self.stats)
        self._by_automation: dict[str, list[names.Entry]] = {}
        self._order = 0

    # --- loading ---

    def load(self, automation_id: str, event_triggers: Sequence[triggers.EventTrigger]) -> None:
        """Adds (or replaces) the event triggers of one automation (no durable call)."""
        self._engine.check_thread()
        previous = self._by_automation.get(automation_id)
        order = previous[0].order[0] if previous else self._order
        if not previous:
            self._order += 1
        entries = [names.Entry(automation_id, t, (order, k)) for k, t in enumerate(event_triggers)]
        acquire = self._book.acquire
        for entry in entries:  # acquire the new rules before releasing the old ones
            if not entry.never:
                entry.rules = tuple(acquire(key) for key in compiler.rule_keys(entry.trigger))
        if previous is not None:
            self._drop(automation_id)
        self._by_automation[automation_id] = entries
        self._names.add(entries)
        self._names.cache.clear()

    def unload(self, automation_id: str) -> None:
        """Removes every trigger of one automation (no durable call; its rules may die)."""
        self._engine.check_thread()
        self._drop(automation_id)
        self._names.cache.clear()

    def _drop(self, automation_id: str) -> None:
        entries = self._by_automation.pop(automation_id, None)
        if not entries:
            return
        self._names.remove(entries)
        for entry in entries:
            for rule in entry.rules:
                self._book.release(rule)

    # --- shards ---

    def flush(self) -> None:
        """Seals every pending rule into shards now (calls durable: owner thread only)."""
        self._engine.check_thread()
        self._maintain(force=True)

    def _maintain(self, force: bool = False) -> None:
        packs = self._book.maintain(force=force)
        if packs is None:
            return
        if self._isolate and self._worth_replacing():
            self._replace_gateway("to give back the memory of abandoned rulesets")
        for pack in packs:
            self._build(pack.rules)
        self._names.cache.clear()

    def _build(self, rules: list[packing.Rule]) -> None:
        """Creates the ruleset of a new shard (relaxing every label test if durable rejects it)."""
        name = f"rete{next(_RULESET_SERIAL)}"
        for attempt in (0, 1):
            if attempt:
                for rule in rules:  # fallback: every label test relaxed, verified in Python
                    rule.compiled = compiler.compile_rule(rule.key, self._fields, relax_all=True)
            named = [(f"r{r.number}", r.compiled) for r in rules if r.compiled is not None]
            definition = json.dumps(compiler.ruleset_definition(named), ensure_ascii=False)
            try:
                handle = self._create(f"{name}_{attempt}", definition)
            except self._engine.error:
                _log.exception("durable_rules rejected %s (attempt %d)", name, attempt)
                continue
            self.stats.rulesets_created += 1
            break
        else:  # pragma: no cover - both attempts rejected: the rules stay on the Python path
            return
        self._book.install(name, handle, rules, definition)

    def _create(self, name: str, definition: str) -> int:
        """Creates a ruleset, in a new worker if the current one is found gone."""
        try:
            return self._engine.create_ruleset(name, definition)
        except _gateway.GatewayLost:
            _log.exception("the durable_rules worker is gone; starting another")
            self._replace_gateway("because the previous one is gone")
            return self._engine.create_ruleset(name, definition)

    # --- the worker process (isolate=True) ---

    def _worth_replacing(self) -> bool:
        """True once the abandoned rulesets would hold more than the live ones, and enough."""
        rulesets, rules = self._abandoned_before
        abandoned_kb = (self.stats.rulesets_abandoned - rulesets) * _RULESET_KB + (
            self.stats.rules_abandoned - rules
        ) * _RULE_KB
        shards = self._book.shards
        live_kb = len(shards) * _RULESET_KB + sum(len(s.rules) for s in shards) * _RULE_KB
        return abandoned_kb >= max(self._recycle_min_kb, live_kb)

    def _replace_gateway(self, why: str) -> None:
        """Starts a new worker, recreates every live shard's ruleset in it, stops the old one."""
        old = self._engine
        fresh = _process_gateway.ProcessGateway()
        fresh.check_thread()
        for shard in self._book.shards:
            shard.handle = fresh.create_ruleset(f"{shard.name}_w", shard.definition)
        self._engine = fresh
        self._poster.gateway = fresh
        self._poster.lost = False
        old.close()
        self._abandoned_before = (self.stats.rulesets_abandoned, self.stats.rules_abandoned)
        self.stats.gateways_replaced += 1
        _log.info(
            "durable_rules worker replaced %s: %d live rulesets recreated in pid %d",
            why,
            len(self._book.shards),
            fresh.pid,
        )

    def close(self) -> None:
        """Stops the worker process of an isolated matcher (nothing to do otherwise)."""
        self._engine.close()

    @property
    def worker_pid(self) -> int:
        """The process id of an isolated matcher's worker (0 when none runs)."""
        engine = self._engine
        return engine.pid if isinstance(engine, _process_gateway.ProcessGateway) else 0

    # --- matching ---

    def match_batch(self, batch: Sequence[events.Event]) -> list[list[matching.Touch]]:
        """Returns, for each event of ``batch`` in order, the triggers it touches."""
        self._engine.check_thread()
        book = self._book
        book.batches += 1
        if book.pending or book.dirty:
            self._maintain()
        out: list[list[matching.Touch]] = []
        chunk_size = batches.CHUNK
        for start in range(0, len(batch), chunk_size):
            out.extend(self._match_chunk(batch[start : start + chunk_size]))
            if self._poster.lost:
                self._replace_gateway("because the previous one is gone")
        self.stats.events += len(batch)
        return out

    def _match_chunk(self, chunk: Sequence[events.Event]) -> list[list[matching.Touch]]:
        cache = self._names.cache
        resolve = self._names.resolve
        # Most events have a name no trigger covers, and a chunk has few distinct names: looking
        # at those first spares the per-event loop below for a chunk that touches nothing.
        for name in set(map(_EVENT_NAME, chunk)):
            cands = cache.get(name)
            if cands is None:
                cands = resolve(name)
            if cands.plain or cands.shards:
                break
        else:
            return [[] for _ in chunk]
        unsafe = compiler.UNSAFE.search
        max_chars = names.MAX_VALUE_CHARS
        resolved: list[names.Candidates] = []
        posts: dict[int, tuple[packing.Shard, list[int]]] = {}
        python_path: set[int] = set()
        for i, event in enumerate(chunk):
            cands = cache.get(event.event)
            if cands is None:
                cands = resolve(event.event)
            resolved.append(cands)
            if not cands.shards:
                continue
            values = "".join(event.resource.values())
            if cands.unsafe or len(values) > max_chars or unsafe(values) is not None:
                python_path.add(i)
                continue
            for shard in cands.shards:
                slot = posts.get(id(shard))
                if slot is None:
                    posts[id(shard)] = (shard, [i])
                else:
                    slot[1].append(i)
        fired: dict[int, list[packing.Rule]] = {}
        post = self._poster.post
        for shard, indices in posts.values():
            post(shard, chunk, indices, fired, python_path)
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

    def _check(self, entry: names.Entry, rule: packing.Rule, event: events.Event) -> bool:
        """The Python part for a trigger whose rule fired: a relaxed spec, ``match_related``."""
        assert rule.compiled is not None
        if not rule.compiled.exact and not self._python_spec(entry, event):
            return False
        return not entry.related or self._related_ok(entry, event)

    def _python_spec(self, entry: names.Entry, event: events.Event) -> bool:
        self.stats.python_checks += 1
        return compiler.spec_holds(entry.spec, event.resource)

    def _related_ok(self, entry: names.Entry, event: events.Event) -> bool:
        self.stats.python_checks += 1
        for spec in entry.related:
            for labels in event.related:
                if compiler.spec_holds(spec, labels):
                    break
            else:
                return False
        return True

    # --- introspection (tests, bench) ---

    def held_facts(self) -> int:
        """Facts held across all live shards (always 0 between batches)."""
        return sum(len(self._engine.get_facts(s.handle)) for s in self._book.shards if s.handle)

    @property
    def shard_count(self) -> int:
        """Live shards (rulesets in use)."""
        return len(self._book.shards)

    @property
    def pending_rules(self) -> int:
        """Rules not yet sealed into a shard (matched in Python meanwhile)."""
        return len(self._book.pending)

    def shard_sizes(self) -> list[tuple[int, int]]:
        """(rules, dead rules) per live shard."""
        return [(len(s.rules), s.dead) for s in self._book.shards]
