"""The shard packing model: rete rules, the shards (rulesets) holding them, and their capacity.

Pure (no durable_rules): :func:`pack` fills new shards with compiled rules so that no ruleset
exceeds durable's limits (rules and name tests per ruleset, children per alpha node, properties
per fact, alpha paths one fact may match at once). Why these limits, and how a shard lives and
dies, is in ``docs/design/rete.md``; when rules are sealed and shards retired is ``lifecycle``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from automations.engine.rete import compiler


class Rule:
    """One rete rule, shared by every trigger with the same (name pattern, spec).

    Attributes:
        key: What the rule tests.
        number: Unique in its matcher; the rule is ``r<number>`` in its ruleset.
        compiled: The compiled rule once sealing compiled it, else None.
        shard: The live shard holding it, or None while pending (or dead in a retired shard).
        refs: Loaded triggers using it; 0 means dead.
        pending_since: The batch count when it last became pending.
    """

    __slots__ = ("key", "number", "compiled", "shard", "refs", "pending_since")

    def __init__(self, key: compiler.RuleKey, number: int) -> None:
        self.key = key
        self.number = number
        self.compiled: compiler.Rule | None = None
        self.shard: Shard | None = None
        self.refs = 0
        self.pending_since = 0


class Shard:
    """One durable ruleset holding a bounded set of rules.

    Attributes:
        name: The ruleset's name (unique in the process).
        handle: durable's handle of the ruleset (0 until created).
        rules: The rules it was built with, by number (dead ones included).
        fields: (label, fact field) of every label its rules read, sorted by label.
        names: Distinct name tests (name patterns) among its rules.
        dead: How many of its rules are dead.
        retired: Abandoned: never posted to again.
        definition: The ruleset's JSON definition (to recreate it in another gateway).
    """

    __slots__ = ("name", "handle", "rules", "fields", "names", "dead", "retired", "definition")

    def __init__(self, name: str) -> None:
        self.name = name
        self.handle = 0
        self.rules: dict[int, Rule] = {}
        self.fields: tuple[tuple[str, str], ...] = ()
        self.names = 0
        self.dead = 0
        self.retired = False
        self.definition = ""


def fill(shard: Shard, rules: Iterable[Rule], fields: compiler.FieldNames) -> None:
    """Makes ``shard`` the home of ``rules`` (compiled ones) and records the fields they read."""
    rules = list(rules)
    labels = sorted({label for r in rules if r.compiled for label in r.compiled.labels})
    shard.fields = tuple((label, fields.field(label)) for label in labels)
    shard.names = len({rule.key.name_pattern for rule in rules})
    for rule in rules:
        shard.rules[rule.number] = rule
        rule.shard = shard


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """What one shard may hold.

    Attributes:
        max_rules: Rules per ruleset.
        max_names: Distinct name tests per ruleset.
        max_width: Children the rules may add to one alpha node (durable's bucket holds 512).
        max_fields: Label fields per fact (durable allows 255 properties).
        max_weight: Alpha paths one fact may match at once (durable allows 64).
    """

    max_rules: int
    max_names: int
    max_width: int = 400
    max_fields: int = 200
    max_weight: int = 48


@dataclasses.dataclass(slots=True)
class Group:
    """An upper bound of the alpha paths one fact can match among rules sharing a name test.

    Rules whose first label test is one literal equality on the same label and different values
    are exclusive: only the heaviest value counts. All other rules may match together.
    """

    free: int = 0
    keyed: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    best: dict[str, int] = dataclasses.field(default_factory=dict)
    total: int = 0

    def total_with(self, rule: compiler.Rule) -> int:
        """The group's bound if ``rule`` joined it."""
        if rule.first_literal is None:
            return self.total + rule.weight
        label = rule.first_literal[0]
        grown = self.keyed.get(rule.first_literal, 0) + rule.weight
        best = self.best.get(label, 0)
        return self.total - best + max(best, grown)

    def add(self, rule: compiler.Rule) -> None:
        """Adds ``rule`` to the group."""
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
class Pack:
    """Capacity accounting while packing rules into one new shard.

    The alpha-stack bound (``max_weight``): a fact named X can match the paths of X's group, of
    every pattern group (their regexes may all match) and of the any-name group. Groups are keyed
    by name pattern (one name test node each; ``None``: no name test).
    """

    rules: list[Rule] = dataclasses.field(default_factory=list)
    labels: set[str] = dataclasses.field(default_factory=set)
    width: int = 0
    groups: dict[str | None, Group] = dataclasses.field(default_factory=dict)
    wild: int = 0  # the sum of the totals of the pattern and any-name groups
    max_exact: int = 0  # the largest total of an exact-name group

    def fits(self, rule: compiler.Rule, limits: Limits) -> bool:
        """True when ``rule`` can join the shard without exceeding ``limits``."""
        if len(self.rules) >= limits.max_rules or self.width + rule.width > limits.max_width:
            return False
        pattern = rule.key.name_pattern
        group = self.groups.get(pattern)
        if group is None and len(self.groups) >= limits.max_names:
            return False
        if len(self.labels | rule.labels) > limits.max_fields:
            return False
        group = group or Group()
        grown = group.total_with(rule)
        if rule.name_exact is not None:
            return grown + self.wild <= limits.max_weight
        return self.max_exact + self.wild - group.total + grown <= limits.max_weight

    def add(self, rule: Rule, compiled: compiler.Rule) -> None:
        """Adds ``rule`` (compiled as ``compiled``) to the shard."""
        self.rules.append(rule)
        self.labels |= compiled.labels
        self.width += compiled.width
        group = self.groups.setdefault(compiled.key.name_pattern, Group())
        before = group.total
        group.add(compiled)
        if compiled.name_exact is not None:
            self.max_exact = max(self.max_exact, group.total)
        else:
            self.wild += group.total - before


def pack(rules: Iterable[Rule], limits: Limits) -> list[Pack]:
    """Packs compiled rules, in order, into as few new shards as a short look-back finds.

    Each rule goes into the newest of the last four packs it fits, else into a new pack (rules
    come sorted by name pattern, so a name's rules end up together).

    Raises:
        ValueError: A rule is not compiled.
    """
    packs: list[Pack] = []
    for rule in rules:
        compiled = rule.compiled
        if compiled is None:
            raise ValueError(f"rule r{rule.number} is packed before it is compiled")
        for candidate in reversed(packs[-4:]):
            if candidate.fits(compiled, limits):
                candidate.add(rule, compiled)
                break
        else:
            new = Pack()
            new.add(rule, compiled)
            packs.append(new)
    return packs
