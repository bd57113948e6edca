"""Factories, a tiny, obviously-correct reference matcher and a one-thread facade for rete tests."""

from __future__ import annotations

import concurrent.futures
import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from automations.domain import events, triggers
from automations.engine import matching
from automations.engine.rete import runtime

T = TypeVar("T")


def trig(
    tid: str,
    *,
    match: Mapping[str, Sequence[str]] | None = None,
    expect: Sequence[str] = (),
    after: Sequence[str] = (),
    related: Sequence[Mapping[str, Sequence[str]]] = (),
) -> triggers.EventTrigger:
    return triggers.EventTrigger(
        id=tid,
        match={k: tuple(v) for k, v in (match or {}).items()},
        match_related=tuple({k: tuple(v) for k, v in r.items()} for r in related),
        after=tuple(after),
        expect=tuple(expect),
        for_each=(),
        posture=triggers.Posture.REACTIVE,
        threshold=1,
        within=0.0,
    )


def event(
    name: str,
    resource: Mapping[str, str] | None = None,
    related: Sequence[Mapping[str, str]] = (),
    eid: str = "e",
) -> events.Event:
    res = {"prefect.resource.id": "r.1"}
    if resource is not None:
        res = dict(resource)
    return events.Event(id=eid, event=name, occurred=0.0, resource=res, related=tuple(related))


def _label_ok(patterns: Sequence[str], value: str | None) -> bool:
    if value is None:
        return False
    for p in patterns:
        if p.startswith("!"):
            if not fnmatch.fnmatchcase(value, p[1:]):
                return True
        elif fnmatch.fnmatchcase(value, p):
            return True
    return False


def _spec_ok(spec: Mapping[str, Sequence[str]], labels: Mapping[str, str]) -> bool:
    return all(_label_ok(pats, labels.get(label)) for label, pats in spec.items())


def reference_touches(
    loaded: Sequence[tuple[str, Sequence[triggers.EventTrigger]]], ev: events.Event
) -> list[matching.Touch]:
    """Prefect's find_interested_triggers + covers, written plainly (no index, no cache)."""
    out: list[matching.Touch] = []
    for automation_id, trs in loaded:
        for t in trs:
            index = list(t.expect or ("*",))
            if t.expect:
                index = sorted(set(t.expect) | set(t.after))
            if not any(fnmatch.fnmatchcase(ev.event, p) for p in index):
                continue
            if t.expect:
                rx = "|".join(re.escape(p).replace("\\*", ".+") for p in index)
            else:
                rx = ".+"
            if re.match(rx, ev.event) is None:
                continue
            if not _spec_ok(t.match, ev.resource):
                continue
            if not all(any(_spec_ok(s, r) for r in ev.related) for s in t.match_related if s):
                continue

            def nm(p: str) -> bool:
                if p.startswith("!"):
                    return not fnmatch.fnmatchcase(ev.event, p[1:])
                return fnmatch.fnmatchcase(ev.event, p)

            after = any(nm(p) for p in t.after)
            expect = not t.expect or any(nm(p) for p in t.expect)
            out.append(matching.Touch(automation_id, t, after, expect))
    return out


class SingleThreadMatcher:
    """Runs a :class:`ReteMatcher` on one dedicated thread, for callers on any thread.

    Every call (``load``, ``unload``, ``match_batch``, ``flush``) is submitted to a single-worker
    executor and waited for, so all durable_rules calls happen on that worker.
    """

    def __init__(self, matcher: runtime.ReteMatcher | None = None) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="durable-rules"
        )
        self._matcher = matcher if matcher is not None else self._run(runtime.ReteMatcher)

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return self._executor.submit(fn, *args).result()

    @property
    def matcher(self) -> runtime.ReteMatcher:
        return self._matcher

    def load(self, automation_id: str, event_triggers: Sequence[triggers.EventTrigger]) -> None:
        self._run(self._matcher.load, automation_id, event_triggers)

    def unload(self, automation_id: str) -> None:
        self._run(self._matcher.unload, automation_id)

    def match_batch(self, batch: Sequence[events.Event]) -> list[list[matching.Touch]]:
        return self._run(self._matcher.match_batch, batch)

    def flush(self) -> None:
        self._run(self._matcher.flush)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
