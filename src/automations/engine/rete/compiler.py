r"""Pure compiler from event triggers to durable_rules JSON rule definitions (no durable import).

What goes into the rete, and what does not
-------------------------------------------
A trigger is touched by an event when (1) the event name is covered by its ``expect``/``after``
patterns, (2) its ``match`` spec holds on the primary resource and (3) every ``match_related`` spec
is satisfied by some related resource. Only (2) is compiled into rete rules:

* (1) is decided exactly, in Python, once per distinct event name, by the name index in front of
  the rete (``names``): Prefect's two-step check (``fnmatchcase`` index, then an escaped regex
  with ``*`` as ``.+`` matched at the start) has corner cases across several patterns that no
  single durable regex reproduces. Each rule still carries a cheap name test, a *superset* of the
  pattern's ``fnmatchcase``, so that rules of other names sharing a ruleset stay quiet.
* (3) is checked in Python on the rete's survivors. durable_rules cannot soundly say "some element
  of an array satisfies all of these": in 2.0.28 the ``$iany`` node is shared by every rule testing
  the same array property (``findAlpha`` never compares the inner expression) and its inner loop can
  reset a match found by an earlier item; a per-related-resource fact joined on the event id needs
  ``dist``-less joins that fire once per combination. A Python check on the few triggers whose name
  and primary spec already matched is exact and cheap.

One rule per distinct (name pattern, primary spec) pair; triggers sharing a pair share the rule.
A trigger with an empty ``match`` has no rule at all: the name index decides it alone.

The rule dialect, and why some conditions are relaxed
-----------------------------------------------------
durable_rules sees strings as their raw JSON text, looks properties up by a 32-bit FNV-1a hash of
their name, treats ``a.b`` field names as nested paths, and has its own regex engine (full match,
``%`` escapes, compiled to a DFA). Measured and read from its C sources:

* Label keys contain dots, so each label becomes a short generated field name (``l1``, ``l2``...),
  chosen so that no two field names (nor ``id``, ``sid``, ``n``) share an FNV-1a hash.
* Regexes whose ``*`` is not trailing give false negatives (``.*%..*.b`` misses ``..bb``), and a
  few short patterns overflow the DFA state limit (error 503). Patterns with an inner ``*`` are
  therefore compiled to their prefix (``abc*def`` -> ``abc.*``), a superset.
* ``[...]`` classes become ``.``, a superset (a class matches exactly one character).
* A negated glob cannot be expressed (there is no "not matches"); it becomes "label present".
* Values with characters JSON escapes (``"``, ``\``, control characters), lone surrogates or
  U+FFFE/U+FFFF (durable's internal "any character" symbol) would be compared in escaped form;
  patterns containing them are relaxed to "label present", and the runtime sends events carrying
  such values down the Python path.

A relaxed condition is a *superset* of the exact one, and its rule is marked ``exact=False``: the
runtime re-checks the spec in Python for every event the rule fires on. Exact conditions are:
literal equality, ``!literal`` (``$neq``; it is only evaluated on present properties, so a missing
label never matches), and star-free globs with ``?`` and an optional trailing ``*``.

Engine limits, which each ``Rule`` describes for the packer in ``packing`` (``weight``,
``width``, ``first_literal``, ``labels``): at most 64 alpha paths may match one fact at once
(``MAX_STACK_SIZE``, error 303, pinned by a test), at most 512 children per alpha node
(``NEXT_BUCKET_LENGTH``), at most 255 properties per fact (``MAX_OBJECT_PROPERTIES``), string
lengths of 16 bits. Within a rule: ORed alternatives are bounded (``MAX_ALTERNATIVES``), a rule's
weight (the product of its labels' simultaneously matching alternatives) is bounded
(``MAX_RULE_WEIGHT``) by relaxing its widest labels, and at most ``MAX_LABELS`` labels are tested.
Literal-equality labels are tested first (most selective; and rules whose first tests are
equalities on one label are mutually exclusive, which lets the packer fill rulesets densely).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from automations.domain import triggers

SpecKey = tuple[tuple[str, tuple[str, ...]], ...]
"""A canonical resource spec: sorted (label, sorted distinct patterns) pairs."""

JSON = dict[str, Any]
"""A JSON object as built for durable_rules."""

NAME_FIELD = "n"
"""The fact field holding the event name."""
RESERVED_FIELDS = ("id", "sid", "n", "$s", "$i", "m")
"""Field names the engine or this compiler uses; generated label fields must not collide."""

MAX_ALTERNATIVES = 8
"""A label with more ORed patterns than this is relaxed to "label present"."""
MAX_RULE_WEIGHT = 16
"""A rule whose simultaneous-match weight exceeds this is relaxed label by label."""
MAX_LABELS = 32
"""Labels tested per rule; the rest of a larger spec is left to the Python re-check."""
MAX_PATTERN_LENGTH = 512
"""Longer patterns are relaxed (the regex DFA has a 4096-state limit; durable's string lengths
are 16-bit)."""

UNSAFE = re.compile('[\x00-\x1f"\\\\\ud800-\udfff\ufffe\uffff]')
"""Characters durable_rules would not see verbatim (see ``is_unsafe``)."""
_REGEX_SPECIALS = frozenset(".|?*+()[]{}%")
_GLOB_CHARS = frozenset("*?[")


def is_unsafe(text: str) -> bool:
    """True when durable_rules would not see ``text`` verbatim (JSON escapes, U+FFFE...)."""
    return UNSAFE.search(text) is not None


def fnv1a32(text: str) -> int:
    """durable_rules' ``fnv1Hash32`` over the UTF-8 bytes of ``text`` (``char`` is signed)."""
    h = 0x811C9DC5
    for b in text.encode("utf-8", "surrogatepass"):
        h ^= b if b < 0x80 else (0xFFFFFF00 | b)
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


class FieldNames:
    """Allocates fact field names for label keys: short, stable, FNV-1a collision-free.

    Args:
        reserved: Field names that must keep their own hash (``id``, ``sid``, ``n``...).
    """

    def __init__(self, reserved: Iterable[str] = RESERVED_FIELDS) -> None:
        self._by_label: dict[str, str] = {}
        self._hashes: set[int] = {fnv1a32(name) for name in reserved}
        self._next = 1

    def field(self, label: str) -> str:
        """Returns the field name of ``label``, allocating one on first use."""
        name = self._by_label.get(label)
        if name is None:
            while True:
                name = f"l{self._next}"
                self._next += 1
                h = fnv1a32(name)
                if h not in self._hashes:
                    self._hashes.add(h)
                    break
            self._by_label[label] = name
        return name

    def items(self) -> list[tuple[str, str]]:
        """Returns every (label, field) pair allocated so far."""
        return list(self._by_label.items())


def canonical_spec(spec: triggers.ResourceSpec) -> SpecKey:
    """Returns the canonical, hashable form of a resource spec."""
    return tuple(sorted((label, tuple(sorted(set(pats)))) for label, pats in spec.items()))


# --- the Python reference for specs (used to verify relaxed rules and for the Python path) ---


def _glob_matches(pattern: str, value: str) -> bool:
    # A pattern with no glob character matches itself only: compared as a string, it never
    # reaches fnmatch's cache of compiled patterns (32,768 regexes under automation churn).
    if "*" not in pattern and "?" not in pattern and "[" not in pattern:
        return value == pattern
    return fnmatch.fnmatchcase(value, pattern)


def label_pattern_matches(pattern: str, value: str) -> bool:
    """Prefect's label ``matches``: full ``fnmatchcase`` glob, a leading ``!`` negates."""
    if pattern.startswith("!"):
        return not _glob_matches(pattern[1:], value)
    return _glob_matches(pattern, value)


def spec_holds(spec: SpecKey, labels: Mapping[str, str]) -> bool:
    """True when every label of ``spec`` is present and matches one of its patterns."""
    for label, patterns in spec:
        value = labels.get(label)
        if value is None:
            return False
        for pattern in patterns:
            if label_pattern_matches(pattern, value):
                break
        else:
            return False
    return True


# --- rules ---


@dataclasses.dataclass(frozen=True, slots=True)
class RuleKey:
    """What one rete rule tests: an event-name pattern (None: any name) and a primary spec."""

    name_pattern: str | None
    spec: SpecKey


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rete rule (the condition of its single ``m`` term).

    Attributes:
        key: What the rule tests.
        condition: The durable_rules condition for the ``m`` term.
        exact: False when some part was relaxed to a superset (the spec is re-checked in Python).
        labels: The label keys whose fields the rule reads.
        name_exact: The event name when the name test is an equality, else None.
        weight: Upper bound of alpha paths of this rule one fact can match at once.
        width: Most alternatives of any one condition (children one rule adds to a node).
        first_literal: (label, value) when the test right after the name test is one literal
            equality: rules of one name node whose first tests are equalities on one label with
            different values cannot match the same fact (the packer's weight bound uses this).
    """

    key: RuleKey
    condition: JSON
    exact: bool
    labels: frozenset[str]
    name_exact: str | None
    weight: int
    width: int
    first_literal: tuple[str, str] | None = None


def rule_keys(trigger: triggers.EventTrigger) -> list[RuleKey]:
    """Returns the rule keys of a trigger: one per name pattern; none when ``match`` is empty.

    The name patterns are Prefect's index patterns: ``expect | after``, or ``*`` (any name)
    when ``expect`` is empty.
    """
    if not trigger.match:
        return []
    spec = canonical_spec(trigger.match)
    if not trigger.expect:
        return [RuleKey(None, spec)]
    patterns = sorted(set(trigger.expect) | set(trigger.after))
    return [RuleKey(p, spec) for p in patterns]


def spec_is_unsatisfiable(spec: SpecKey) -> bool:
    """True when a label has no pattern at all (Prefect's ``any([])`` is false)."""
    return any(not patterns for _, patterns in spec)


def glob_condition(field: str, glob: str) -> tuple[JSON, bool, bool]:
    """Compiles a positive fnmatch glob on ``field``.

    Returns:
        (condition, exact, is_equality).
    """
    if len(glob) > MAX_PATTERN_LENGTH or is_unsafe(glob):
        return {"$ex": {field: 1}}, False, False
    if not any(c in _GLOB_CHARS for c in glob):
        return {field: glob}, True, True
    # tokens up to the first star outside a bracket class; a class becomes "." (a superset)
    parts: list[str] = []
    exact = True
    star = False
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            star = True
            exact = exact and glob[i:] == "*" * (len(glob) - i)
            break
        if c == "?":
            parts.append(".")
        elif c == "[" and (end := _bracket_end(glob, i)) >= 0:
            parts.append(".")
            exact = False
            i = end
        else:
            parts.append("%" + c if c in _REGEX_SPECIALS else c)
        i += 1
    regex = "".join(parts)
    if star:
        if not regex:
            return {"$ex": {field: 1}}, exact, False
        regex += ".*"
    return {"$mt": {field: regex}}, exact, False


def _bracket_end(text: str, start: int) -> int:
    """Index of the ``]`` closing the fnmatch class at ``start``, or -1 (then ``[`` is literal)."""
    j = start + 1
    if j < len(text) and text[j] == "!":
        j += 1
    if j < len(text) and text[j] == "]":
        j += 1
    while j < len(text) and text[j] != "]":
        j += 1
    return j if j < len(text) else -1


def label_condition(field: str, patterns: Sequence[str]) -> tuple[JSON, bool, int, int]:
    """Compiles the ORed patterns of one label.

    Returns:
        (condition, exact, weight factor, alternatives).
    """
    if len(patterns) > MAX_ALTERNATIVES:
        return {"$ex": {field: 1}}, False, 1, 1
    alternatives: list[JSON] = []
    equalities = 0
    others = 0
    all_exact = True
    for pattern in patterns:
        if pattern.startswith("!"):
            body = pattern[1:]
            if (
                any(c in _GLOB_CHARS for c in body)
                or is_unsafe(body)
                or len(body) > MAX_PATTERN_LENGTH
            ):
                return {"$ex": {field: 1}}, False, 1, 1
            alternatives.append({"$neq": {field: body}})
            others += 1
            continue
        condition, exact, is_equality = glob_condition(field, pattern)
        if "$ex" in condition:  # matches every present value: the whole label does
            return condition, exact, 1, 1
        all_exact = all_exact and exact
        alternatives.append(condition)
        if is_equality:
            equalities += 1
        else:
            others += 1
    factor = min(1, equalities) + others
    if len(alternatives) == 1:
        return alternatives[0], all_exact, factor, 1
    return {"$or": alternatives}, all_exact, factor, len(alternatives)


def name_condition(pattern: str | None) -> tuple[JSON | None, str | None]:
    """The rule's event-name test, a superset of ``fnmatchcase(name, pattern)``.

    Returns:
        (condition or None for no test, the exact name when the test is an equality).
    """
    if pattern is None:
        return None, None
    condition, exact, is_equality = glob_condition(NAME_FIELD, pattern)
    if is_equality:
        return condition, pattern
    if "$ex" in condition:
        return None, None
    return condition, None


def _is_literal(patterns: Sequence[str]) -> bool:
    """One pattern, compiled as a plain equality."""
    if len(patterns) != 1:
        return False
    p = patterns[0]
    return (
        not (p.startswith("!") or any(c in _GLOB_CHARS for c in p) or is_unsafe(p))
        and len(p) <= MAX_PATTERN_LENGTH
    )


def compile_rule(key: RuleKey, fields: FieldNames, *, relax_all: bool = False) -> Rule:
    """Compiles one rule key.

    Args:
        key: The name pattern and primary spec.
        fields: The label-key to field-name allocator.
        relax_all: No regex anywhere: regex label tests become "label present" and regex name
            tests are dropped; equalities stay (the fallback when durable_rules rejects a
            ruleset; weights only shrink, so the packing stays valid).
    """
    name_test, name_exact = name_condition(key.name_pattern)
    if relax_all and name_exact is None:
        name_test = None
    labels: list[tuple[str, JSON, bool, int, int]] = []
    truncated = len(key.spec) > MAX_LABELS  # a subset of an AND is a superset: not exact
    # literal labels first: most selective, and exclusive between rules (``first_literal``)
    ordered = sorted(key.spec, key=lambda item: not _is_literal(item[1]))
    for label, patterns in ordered[:MAX_LABELS]:
        field = fields.field(label)
        compiled = label_condition(field, patterns)
        if relax_all and '"$mt"' in json.dumps(compiled[0]):
            compiled = ({"$ex": {field: 1}}, False, 1, 1)
        labels.append((label, *compiled))
    # relax the widest labels until the rule's simultaneous-match weight is bounded
    while True:
        weight = 1
        for _, _, _, factor, _ in labels:
            weight *= factor
        if weight <= MAX_RULE_WEIGHT:
            break
        widest = max(range(len(labels)), key=lambda i: labels[i][3])
        label = labels[widest][0]
        labels[widest] = (label, {"$ex": {fields.field(label): 1}}, False, 1, 1)
    terms: list[JSON] = []
    if name_test is not None:
        terms.append(name_test)
    terms.extend(condition for _, condition, _, _, _ in labels)
    if not terms:
        terms.append({"$ex": {NAME_FIELD: 1}})
    condition = terms[0] if len(terms) == 1 else {"$and": terms}
    first_literal: tuple[str, str] | None = None
    if labels:
        label, first, *_ = labels[0]
        field = fields.field(label)
        value = first.get(field)
        if len(first) == 1 and isinstance(value, str):
            first_literal = (label, value)
    return Rule(
        key=key,
        condition=condition,
        exact=not truncated and all(exact for _, _, exact, _, _ in labels),
        labels=frozenset(label for label, *_ in labels),
        name_exact=name_exact,
        weight=weight,
        width=max([1] + [alts for *_, alts in labels]),
        first_literal=first_literal,
    )


def ruleset_definition(rules: Iterable[tuple[str, Rule]]) -> JSON:
    """Returns the durable_rules ruleset definition of named rules (one ``m`` term each)."""
    return {name: {"all": [{"m": rule.condition}]} for name, rule in rules}


def compile_triggers(
    event_triggers: Sequence[triggers.EventTrigger], fields: FieldNames | None = None
) -> JSON:
    """Compiles triggers into one ruleset definition, rules named ``r1``, ``r2``... (deduplicated).

    This is the shape the runtime builds per shard; it is what the golden tests pin.
    """
    fields = fields or FieldNames()
    seen: dict[RuleKey, str] = {}
    named: list[tuple[str, Rule]] = []
    for trigger in event_triggers:
        for key in rule_keys(trigger):
            if key in seen or spec_is_unsatisfiable(key.spec):
                continue
            name = f"r{len(seen) + 1}"
            seen[key] = name
            named.append((name, compile_rule(key, fields)))
    return {
        "rules": ruleset_definition(named),
        "exact": {name: rule.exact for name, rule in named},
        "fields": dict(fields.items()),
    }
