"""Resolved firings of proactive triggers: a key that fired resolves when its events resume.

Prefect Cloud resolves a proactive trigger "that previously fired because events stopped" when it
"sees events resume". This engine's definition of *resume*, for a top-level proactive event trigger
and one key (``for_each`` values) that fired:

* counting starts at the end of the window that fired; expected events of that key (events matching
  ``expect``, or any covered event when ``expect`` is empty) that *occurred* at or after that end
  count, in the order the engine processes them;
* the key resolves when ``max(threshold, 1)`` of them occurred within ``within`` seconds of the
  first one counted (for ``threshold`` 1, the first expected event); when ``within`` passes with
  fewer, counting starts again at the next expected event;
* the Resolved firing happens while the event that completes the count is processed, with that
  event as its triggering event and the key's labels;
* a key that fires again before it resolves (back-to-back windows while still silent) starts
  counting again from the end of its new window; it still resolves once.

This only observes the trigger: its buckets, and so its Triggered firings, are exactly as they are
without it. Reactive triggers never resolve, and a proactive trigger inside a compound or sequence
trigger does not either (composite triggers take Triggered firings only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from automations.domain import events
from automations.engine import state
from automations.engine.state import StateRecord

KeyText = Callable[[Any], str]
"""Makes a record key from a bucket key (``records.key_text``)."""


def _record(automation_id: str, trigger_id: str, key: str, entry: list[float]) -> StateRecord:
    data = orjson.dumps({"from": entry[0], "counted": entry[1], "first": entry[2]})
    return StateRecord(automation_id, trigger_id, state.RESOLUTION, key, data)


class Resolutions:
    """The keys of one proactive trigger that fired and wait for their events to resume.

    Attributes:
        waiting: Key -> ``[counting from, counted, first counted occurred]``.
        dirty: Keys changed since the last step.
        stored: Keys with a record in the store.
    """

    __slots__ = ("within", "needed", "waiting", "dirty", "stored")

    def __init__(self, within: float, threshold: int) -> None:
        self.within = within
        self.needed = max(threshold, 1)
        self.waiting: dict[Any, list[float]] = {}
        self.dirty: set[Any] = set()
        self.stored: set[Any] = set()

    def fired(self, key: Any, window_end: float) -> None:
        """The key's window ending at ``window_end`` fired: wait for events after it."""
        self.waiting[key] = [window_end, 0.0, 0.0]
        self.dirty.add(key)

    def expected(self, key: Any, event: events.Event) -> bool:
        """An expected event of ``key`` was processed; True when the key resolves with it."""
        entry = self.waiting.get(key)
        if entry is None:
            return False
        start, counted, first = entry
        occurred = event.occurred
        if occurred < start:
            return False
        if counted == 0 or occurred >= first + self.within:
            counted, first = 0.0, occurred
        counted += 1
        self.dirty.add(key)
        if counted >= self.needed:
            del self.waiting[key]
            return True
        entry[1], entry[2] = counted, first
        return False

    def records(self, automation_id: str, trigger_id: str, key_text: KeyText) -> list[StateRecord]:
        """The step's records for the changed keys (``key_text`` makes a record key)."""
        out: list[StateRecord] = []
        for key in self.dirty:
            entry = self.waiting.get(key)
            if entry is not None:
                out.append(_record(automation_id, trigger_id, key_text(key), entry))
                self.stored.add(key)
            elif key in self.stored:
                self.stored.discard(key)
                out.append(StateRecord(automation_id, trigger_id, state.RESOLUTION, key_text(key)))
        self.dirty.clear()
        return out

    def snapshot(self, automation_id: str, trigger_id: str, key_text: KeyText) -> list[StateRecord]:
        """Every waiting key as a record."""
        return [
            _record(automation_id, trigger_id, key_text(key), entry)
            for key, entry in self.waiting.items()
        ]

    def restore(self, key: Any, data: Any) -> None:
        """Takes back one stored key."""
        decoded = orjson.loads(data) if isinstance(data, bytes | str) else data
        self.waiting[key] = [
            float(decoded["from"]),
            float(decoded.get("counted") or 0),
            float(decoded.get("first") or 0),
        ]
        self.stored.add(key)
