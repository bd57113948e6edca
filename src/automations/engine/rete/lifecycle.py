"""The rules' lifecycle: shared by key, pending until sealed into new shards, retired with them.

Pure (no durable_rules): :class:`RuleBook` decides which rules are pending, when they are sealed
(and into which new shards, via ``packing``) and which shards are retired; the matcher only
creates the rulesets it is handed and installs them. A retired shard's ruleset is abandoned, never
deleted: the bounded leak is explained in ``docs/design/rete.md``.
"""

from __future__ import annotations

from automations.engine.rete import compiler, packing, stats


class RuleBook:
    """The rules and shards of one matcher, and when rules are sealed or shards retired.

    Args:
        limits: What one shard may hold.
        fields: The fact field names of label keys (shared with the matcher).
        counters: Where abandoned rulesets are counted.
        seal_min_rules: Seal pending rules into a new shard once this many are pending.
        seal_after_batches: ... or once the oldest has waited this many batches.
        retire_min_dead: A shard is retired once it has this many dead rules (and half are dead).
        max_small_shards: Compact when more shards than this are below ``max_rules / 4``.

    Attributes:
        by_number: The live rules by number (``12`` for ``r12``), for decoding actions.
        pending: Live rules in no live shard (matched in Python meanwhile), by number.
        shards: The live shards, oldest first.
        dirty: A rule in a live shard died since the last :meth:`maintain`.
        batches: Batches matched so far (the clock of ``seal_after_batches``).
    """

    def __init__(
        self,
        limits: packing.Limits,
        fields: compiler.FieldNames,
        counters: stats.ReteStats,
        *,
        seal_min_rules: int,
        seal_after_batches: int,
        retire_min_dead: int,
        max_small_shards: int,
    ) -> None:
        self.limits = limits
        self.fields = fields
        self.counters = counters
        self.seal_min = seal_min_rules
        self.seal_after = seal_after_batches
        self.retire_min_dead = retire_min_dead
        self.max_small = max_small_shards
        self.by_key: dict[compiler.RuleKey, packing.Rule] = {}
        self.by_number: dict[int, packing.Rule] = {}
        self.pending: dict[int, packing.Rule] = {}
        self.shards: list[packing.Shard] = []
        self.dirty = False
        self.batches = 0
        self._next_rule = 1

    def acquire(self, key: compiler.RuleKey) -> packing.Rule:
        """The rule testing ``key``, shared (a new one starts pending); counts one more user."""
        rule = self.by_key.get(key)
        if rule is None:
            rule = packing.Rule(key, self._next_rule)
            self._next_rule += 1
            self.by_key[key] = rule
            self.by_number[rule.number] = rule
            rule.pending_since = self.batches
            self.pending[rule.number] = rule
        rule.refs += 1
        return rule

    def release(self, rule: packing.Rule) -> None:
        """Counts one user less; a rule nobody uses dies (in its shard, if it has one)."""
        rule.refs -= 1
        if rule.refs > 0:
            return
        del self.by_key[rule.key]
        del self.by_number[rule.number]
        self.pending.pop(rule.number, None)
        if rule.shard is not None:
            rule.shard.dead += 1
            self.dirty = True

    def retires(self, shard: packing.Shard) -> bool:
        """True when every rule is dead, or at least half and ``retire_min_dead`` of them are."""
        dead = shard.dead
        return dead == len(shard.rules) or (
            dead >= self.retire_min_dead and dead * 2 >= len(shard.rules)
        )

    def small_shards(self) -> list[packing.Shard]:
        """Live shards a quarter full or less in live rules and their names (merging helps)."""
        limits = self.limits
        return [
            s
            for s in self.shards
            if not s.retired
            and len(s.rules) - s.dead < limits.max_rules // 4
            and _live_names(s) < limits.max_names // 4
        ]

    def seal_due(self, *, force: bool = False) -> bool:
        """True when the pending rules should be sealed now (none pending: False)."""
        if not self.pending:
            return False
        oldest = min(r.pending_since for r in self.pending.values())
        return (
            force or len(self.pending) >= self.seal_min or self.batches - oldest >= self.seal_after
        )

    def maintain(self, *, force: bool = False) -> list[packing.Pack] | None:
        """Retires what is due, and seals pending rules when due (always after a retirement).

        Returns:
            The new shards to create (their rules compiled), in order, each to be handed to
            :meth:`install` once its ruleset exists; None when nothing changed.
        """
        self.dirty = False
        changed = False
        for shard in self.shards:
            if not shard.retired and self.retires(shard):
                self.retire(shard)
                changed = True
        small = self.small_shards()
        if len(small) > self.max_small:
            for shard in small:
                self.retire(shard)
            changed = True
        packs: list[packing.Pack] = []
        if self.pending and (changed or self.seal_due(force=force)):
            packs = self.seal()
            changed = True
        if not changed:
            return None
        self.shards = [s for s in self.shards if not s.retired]
        return packs

    def retire(self, shard: packing.Shard) -> None:
        """Abandons ``shard``: its live rules become pending again (to be resealed together)."""
        shard.retired = True
        if shard.handle:
            self.counters.rulesets_abandoned += 1
            self.counters.rules_abandoned += len(shard.rules)
        for rule in shard.rules.values():
            if rule.refs > 0 and rule.shard is shard:
                rule.shard = None
                rule.pending_since = self.batches
                self.pending[rule.number] = rule

    def seal(self) -> list[packing.Pack]:
        """Compiles every pending rule and packs them (by name pattern) into new shards."""
        rules = sorted(self.pending.values(), key=lambda r: (r.key.name_pattern or "", r.number))
        self.pending.clear()
        for rule in rules:
            rule.compiled = compiler.compile_rule(rule.key, self.fields)
        return packing.pack(rules, self.limits)

    def install(
        self, name: str, handle: int, rules: list[packing.Rule], definition: str
    ) -> packing.Shard:
        """Adds the shard whose ruleset ``name`` (``handle``) was created from ``rules``."""
        shard = packing.Shard(name)
        shard.handle = handle
        shard.definition = definition
        packing.fill(shard, rules, self.fields)
        self.shards.append(shard)
        return shard


def _live_names(shard: packing.Shard) -> int:
    """Distinct name patterns among the shard's live rules (``shard.names`` counts dead ones)."""
    if not shard.dead:
        return shard.names
    return len(
        {r.key.name_pattern for r in shard.rules.values() if r.refs > 0 and r.shard is shard}
    )
