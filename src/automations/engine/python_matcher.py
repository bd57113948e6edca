"""The pure-Python :class:`~automations.engine.matching.Matcher`: Prefect's ``covers`` check, fast.

Prefect decides whether a trigger is interested in an event in three steps, and this module
reproduces each exactly (``triggers.find_interested_triggers`` and ``EventTrigger.covers`` /
``starts_after`` / ``expects`` in Prefect 3.8.8):

1. an index: ``fnmatch.fnmatchcase(name, p)`` for ``p`` in ``expect | after`` (or ``*`` when
   ``expect`` is empty);
2. ``covers``: a regex made of every ``expect | after`` pattern escaped, with ``*`` turned into
   ``.+``, matched at the start of the name (``.+`` when ``expect`` is empty);
3. the resource specs (``match`` on the primary resource, every ``match_related`` spec on some
   related resource).

Together, steps 1 and 2 mean that in event names only ``*`` is a wildcard and it matches at least
one character. ``Touch.after`` / ``Touch.expect`` then use ``fnmatchcase`` with ``!`` negation.

Speed: everything is compiled at load time; the name part (steps 1-2 plus after/expect) is computed
once per distinct event name and cached, so the hot path is one dict lookup per event plus the label
checks of the triggers whose names matched.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence

from automations.domain import events, triggers
from automations.engine import matching

LabelCheck = Callable[[str], bool]
"""Tests one label value against the ORed patterns of one label."""
CompiledSpec = tuple[tuple[str, LabelCheck], ...]
"""A resource spec: (label, check) pairs, ANDed."""

_GLOB_CHARS = frozenset("*?[")
_NAME_CACHE_LIMIT = 65_536


def _has_glob(pattern: str) -> bool:
    return any(c in _GLOB_CHARS for c in pattern)


def _compile_pattern(pattern: str) -> LabelCheck:
    """Compiles one label pattern (fnmatch glob, optionally ``!``-negated)."""
    negated = pattern.startswith("!")
    body = pattern[1:] if negated else pattern
    check: LabelCheck
    if not _has_glob(body):
        literal = body
        check = literal.__eq__
    elif body.endswith("*") and not _has_glob(body[:-1]):
        prefix = body[:-1]
        check = _prefix_check(prefix)
    else:
        regex = re.compile(fnmatch.translate(body))
        match = regex.match

        def check(value: str) -> bool:
            return match(value) is not None

    if not negated:
        return check
    positive = check

    def negative(value: str) -> bool:
        return not positive(value)

    return negative


def _prefix_check(prefix: str) -> LabelCheck:
    def check(value: str) -> bool:
        return value.startswith(prefix)

    return check


def compile_label_patterns(patterns: Sequence[str]) -> LabelCheck:
    """Compiles the ORed patterns of one label into one check.

    An empty list never matches (Prefect's ``any([])``).
    """
    if not patterns:
        return _never
    if all(not p.startswith("!") and not _has_glob(p) for p in patterns):
        if len(patterns) == 1:
            return patterns[0].__eq__
        literals = frozenset(patterns)
        return literals.__contains__
    checks = tuple(_compile_pattern(p) for p in patterns)
    if len(checks) == 1:
        return checks[0]

    def any_check(value: str) -> bool:
        for c in checks:
            if c(value):
                return True
        return False

    return any_check


def _never(value: str) -> bool:
    return False


def compile_spec(spec: triggers.ResourceSpec) -> CompiledSpec:
    """Compiles a resource spec: labels ANDed, each label's patterns ORed."""
    return tuple((label, compile_label_patterns(patterns)) for label, patterns in spec.items())


def spec_matches(spec: CompiledSpec, labels: Mapping[str, str]) -> bool:
    """True when every label of ``spec`` is present in ``labels`` and matches.

    A missing label never matches, even for a negated pattern; an empty spec matches everything.
    """
    get = labels.get
    for label, check in spec:
        value = get(label)
        if value is None or not check(value):
            return False
    return True


def name_matches(pattern: str, name: str) -> bool:
    """Prefect's ``matches()`` for event names: ``fnmatchcase`` with ``!`` negation."""
    if pattern.startswith("!"):
        return not fnmatch.fnmatchcase(name, pattern[1:])
    return fnmatch.fnmatchcase(name, pattern)


class _NameFilter:
    """The event-name part of ``covers`` plus ``starts_after`` / ``expects`` for one trigger."""

    __slots__ = ("index_patterns", "regex", "after", "expect")

    def __init__(self, trigger: triggers.EventTrigger) -> None:
        self.after = trigger.after
        self.expect = trigger.expect
        if not trigger.expect:
            self.index_patterns: tuple[str, ...] = ("*",)
            self.regex: re.Pattern[str] = re.compile(".+")
        else:
            both = tuple(sorted(set(trigger.expect) | set(trigger.after)))
            self.index_patterns = both
            self.regex = re.compile("|".join(re.escape(p).replace("\\*", ".+") for p in both))

    def evaluate(self, name: str) -> tuple[bool, bool] | None:
        """Returns (after, expect) when the name is covered, else None."""
        if not any(fnmatch.fnmatchcase(name, p) for p in self.index_patterns):
            return None
        if self.regex.match(name) is None:
            return None
        after = any(name_matches(p, name) for p in self.after)
        expect = not self.expect or any(name_matches(p, name) for p in self.expect)
        return after, expect


class _Entry:
    """One loaded event trigger, compiled."""

    __slots__ = ("automation_id", "trigger", "names", "match", "related", "order", "touches")

    def __init__(self, automation_id: str, trigger: triggers.EventTrigger, order: int) -> None:
        self.automation_id = automation_id
        self.trigger = trigger
        self.order = order
        self.names = _NameFilter(trigger)
        self.match = compile_spec(trigger.match)
        self.related = tuple(compile_spec(s) for s in trigger.match_related if s)
        # the four possible touches, built once and shared
        self.touches = {
            (a, e): matching.Touch(automation_id, trigger, a, e)
            for a in (False, True)
            for e in (False, True)
        }

    def covers_resources(self, event: events.Event) -> bool:
        if self.match and not spec_matches(self.match, event.resource):
            return False
        for spec in self.related:
            for labels in event.related:
                if spec_matches(spec, labels):
                    break
            else:
                return False
        return True


class PythonMatcher:
    """Implements :class:`~automations.engine.matching.Matcher` in plain Python.

    Candidates for an event name are computed once per distinct name (exact names through a dict,
    patterns with ``*`` tested per new name) and cached until the next load or unload.
    """

    def __init__(self) -> None:
        self._by_automation: dict[str, list[_Entry]] = {}
        self._order = 0
        self._exact: dict[str, list[_Entry]] = {}
        self._wild: list[_Entry] = []
        self._cache: dict[str, tuple[tuple[_Entry, matching.Touch], ...]] = {}

    def load(self, automation_id: str, event_triggers: Sequence[triggers.EventTrigger]) -> None:
        """Adds (or replaces) the event triggers of one automation."""
        previous = self._by_automation.get(automation_id)
        if previous:
            order = previous[0].order
            self._drop(automation_id)
        else:
            order = self._order
            self._order += 1
        entries = [_Entry(automation_id, t, order) for t in event_triggers]
        self._by_automation[automation_id] = entries
        for entry in entries:
            patterns = entry.names.index_patterns
            if any(_has_glob(p) for p in patterns):
                self._wild.append(entry)
            else:
                for p in patterns:
                    self._exact.setdefault(p, []).append(entry)
        self._cache.clear()

    def unload(self, automation_id: str) -> None:
        """Removes every trigger of one automation."""
        self._drop(automation_id)
        self._cache.clear()

    def _drop(self, automation_id: str) -> None:
        entries = self._by_automation.pop(automation_id, None)
        if not entries:
            return
        gone = {id(e) for e in entries}
        self._wild = [e for e in self._wild if id(e) not in gone]
        for name in list(self._exact):
            kept = [e for e in self._exact[name] if id(e) not in gone]
            if kept:
                self._exact[name] = kept
            else:
                del self._exact[name]

    def _candidates(self, name: str) -> tuple[tuple[_Entry, matching.Touch], ...]:
        found: dict[int, _Entry] = {}
        for entry in self._exact.get(name, ()):
            found[id(entry)] = entry
        for entry in self._wild:
            found[id(entry)] = entry
        ordered = sorted(found.values(), key=lambda e: e.order)
        out: list[tuple[_Entry, matching.Touch]] = []
        for entry in ordered:
            flags = entry.names.evaluate(name)
            if flags is not None:
                out.append((entry, entry.touches[flags]))
        if len(self._cache) >= _NAME_CACHE_LIMIT:
            self._cache.clear()
        result = tuple(out)
        self._cache[name] = result
        return result

    def close(self) -> None:
        """Nothing to give back: everything is Python objects."""

    def match_batch(self, batch: Sequence[events.Event]) -> list[list[matching.Touch]]:
        """Returns, for each event of ``batch`` in order, the triggers it touches."""
        cache = self._cache
        out: list[list[matching.Touch]] = []
        append = out.append
        for event in batch:
            candidates = cache.get(event.event)
            if candidates is None:
                candidates = self._candidates(event.event)
            if not candidates:
                append([])
                continue
            append([touch for entry, touch in candidates if entry.covers_resources(event)])
        return out
