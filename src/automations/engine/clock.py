"""Prefect's event clock: when proactive windows are due.

The event clock follows ``triggers.update_events_clock`` / ``get_events_clock_offset`` in Prefect:
``C`` is the largest ``min(occurred, now)`` of the events taken up so far (it never moves back) and
``U`` the wall time at which the latest event was taken up (every event updates it, even one older
than ``C``; a held follower updates it on arrival and again when processed). The offset is
``C - U`` (0 before the first event), and a window ending at event time ``E`` is due at the first
wall time ``T`` with ``T + offset >= E``.

All times are float seconds since the Unix epoch, quantised to whole microseconds with
:func:`quantize` wherever the engine computes one, so that equal instants compare equal.
"""

from __future__ import annotations

from typing import Any


def quantize(seconds: float) -> float:
    """Rounds a time to the nearest microsecond (the precision of Prefect's datetimes)."""
    return round(seconds * 1_000_000) / 1_000_000


class EventClock:
    """Prefect's event clock: how far behind real time the event stream is."""

    __slots__ = ("clock", "updated")

    def __init__(self, clock: float | None = None, updated: float | None = None) -> None:
        self.clock = clock
        self.updated = updated

    def update(self, occurred: float, now: float) -> None:
        """Takes up one event that occurred at ``occurred`` and is taken up at wall time ``now``."""
        stamp = occurred if occurred < now else now
        clock = self.clock
        if clock is None or stamp >= clock:
            self.clock = stamp
        self.updated = now

    def offset(self) -> float:
        """``C - U``: 0 before the first event, negative when events lag real time."""
        if self.clock is None or self.updated is None:
            return 0.0
        return self.clock - self.updated

    def as_of(self, now: float) -> float:
        """The event time corresponding to wall time ``now``."""
        return quantize(now + self.offset())

    def due_at(self, event_time: float) -> float:
        """The wall time at which event time ``event_time`` is reached (with the current offset)."""
        return quantize(event_time - self.offset())

    def to_data(self) -> dict[str, Any]:
        """The clock as JSON-able data."""
        return {"clock": self.clock, "updated": self.updated}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> EventClock:
        """Restores a clock from :meth:`to_data`."""
        return cls(data.get("clock"), data.get("updated"))
