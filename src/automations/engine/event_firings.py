"""An event trigger's firings, and the seed a derived firing id is made from."""

from __future__ import annotations

from collections.abc import Callable

from automations.domain import events, firings
from automations.engine.buckets import BucketKey, TriggerRuntime


def make(
    rt: TriggerRuntime,
    key: BucketKey,
    event: events.Event | None,
    now: float,
    window: tuple[float, float] | None,
    firing_id: Callable[[str, float], str],
) -> firings.Firing:
    """A Triggered firing of ``rt`` for ``key`` (in ``window``), or a Resolved one (no window).

    Its id comes from ``firing_id(seed, at)``; the seed names what makes the firing (automation,
    trigger, key, triggering event, window) and ``at`` is the triggering event's ``occurred`` (or
    the window's end), so that the same input evaluated again gives the same derived id.
    """
    eid = event.id if event is not None else ""
    seed = f"{rt.automation_id}\x1f{rt.trigger_id}\x1f{key!r}\x1f{eid}\x1f{window}"
    at = event.occurred if event is not None else window[1] if window else now
    return firings.Firing(
        id=firing_id(seed, at),
        automation_id=rt.automation_id,
        trigger_id=rt.trigger_id,
        trigger_type="event",
        posture=rt.trigger.posture.value,
        triggered=now,
        triggering_event=event,
        triggering_labels=rt.labels(key),
        state=firings.FiringState.TRIGGERED if window else firings.FiringState.RESOLVED,
    )
