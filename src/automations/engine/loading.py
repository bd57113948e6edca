"""Loading an automation into the engine: its runtimes, and on an update what they keep.

:func:`build` makes one runtime per trigger of the automation's tree (event, metric, composite);
:func:`take_over` hands an updated automation's new runtimes the state of its unchanged triggers
(same id: same definition at the same place) and lists what must be deleted for the others. The
facade (``trigger_engine``) then registers the runtimes and applies the outcome.
"""

from __future__ import annotations

import dataclasses

from automations.domain import automations, triggers
from automations.engine import records, restore
from automations.engine.buckets import Bucket, BucketHost, TriggerRuntime
from automations.engine.composite import CompositeRuntime
from automations.engine.metrics.host import MetricEngine
from automations.engine.metrics.runtime import MetricRuntime
from automations.engine.resolution import Resolutions
from automations.engine.state import StateRecord


class Loaded:
    """One loaded automation's runtimes, by trigger id."""

    __slots__ = ("automation", "order", "event_runtimes", "composites", "metric_runtimes")

    def __init__(self, automation: automations.Automation, order: int) -> None:
        self.automation = automation
        self.order = order
        self.event_runtimes: dict[str, TriggerRuntime] = {}
        self.composites: dict[str, CompositeRuntime] = {}
        self.metric_runtimes: dict[str, MetricRuntime] = {}

    def target(self, kept: set[str]) -> restore.Target:
        """Where its records are restored (``kept``: triggers that kept in-memory state)."""
        return (
            self.automation.id,
            self.event_runtimes,
            self.composites,
            kept,
            self.metric_runtimes,
        )

    def match_triggers(self) -> list[triggers.EventTrigger]:
        """What the matcher is given: its event triggers, then its metric triggers' equivalents."""
        out = [rt.trigger for rt in self.event_runtimes.values()]
        out.extend(mr.match_trigger for mr in self.metric_runtimes.values())
        return out


def build(
    automation: automations.Automation,
    order: int,
    host: BucketHost,
    metrics: MetricEngine,
    old: Loaded | None,
) -> Loaded:
    """Builds the runtimes of an automation's trigger tree (a metric trigger's is reused)."""
    aid = automation.id
    loaded = Loaded(automation, order)
    position = 0

    def visit(trigger: triggers.Trigger, parent: CompositeRuntime | None) -> None:
        nonlocal position
        if isinstance(trigger, triggers.EventTrigger):
            rt = TriggerRuntime(aid, trigger, (order, position), host)
            position += 1
            rt.parent = parent
            if parent is None and not rt.reactive:
                rt.resolving = Resolutions(rt.within, rt.threshold)
            loaded.event_runtimes[trigger.id] = rt
        elif isinstance(trigger, triggers.MetricTrigger):
            reused = None if old is None else old.metric_runtimes.get(trigger.id)
            loaded.metric_runtimes[trigger.id] = metrics.build(aid, trigger, parent, reused)
        else:
            cr = CompositeRuntime(aid, trigger)
            cr.parent = parent
            loaded.composites[trigger.id] = cr
            for child in trigger.triggers:
                visit(child, cr)

    visit(automation.trigger, None)
    return loaded


@dataclasses.dataclass
class TakeOver:
    """What taking over an old automation's state leaves to the facade.

    Attributes:
        kept: Trigger ids whose in-memory state was kept (their stored records are skipped).
        deletes: Records of the triggers that are gone.
        dirty_runtimes: Event-trigger runtimes with unwritten bucket changes.
        dirty_composites: Composite runtimes with unwritten child-firing changes.
        schedule: Buckets whose deadline must be scheduled again.
    """

    kept: set[str] = dataclasses.field(default_factory=set)
    deletes: list[StateRecord] = dataclasses.field(default_factory=list)
    dirty_runtimes: list[TriggerRuntime] = dataclasses.field(default_factory=list)
    dirty_composites: list[CompositeRuntime] = dataclasses.field(default_factory=list)
    schedule: list[tuple[TriggerRuntime, Bucket]] = dataclasses.field(default_factory=list)


def take_over(old: Loaded, loaded: Loaded, metrics: MetricEngine) -> TakeOver:
    """Moves the state of unchanged triggers from ``old`` to ``loaded``."""
    out = TakeOver()
    for tid, old_rt in old.event_runtimes.items():
        new_rt = loaded.event_runtimes.get(tid)
        if new_rt is None:
            out.deletes.extend(records.bucket_deletes(old_rt))
            if old_rt.resolving is not None:
                out.deletes.extend(records.resolution_deletes(old_rt))
            for bucket in old_rt.buckets.values():
                bucket.alive = False
            continue
        out.kept.add(tid)
        new_rt.buckets = old_rt.buckets
        new_rt.dirty = old_rt.dirty
        new_rt.removed_stored = old_rt.removed_stored
        if new_rt.resolving is not None and old_rt.resolving is not None:
            new_rt.resolving = old_rt.resolving
        if new_rt.dirty:
            out.dirty_runtimes.append(new_rt)
        for bucket in new_rt.buckets.values():
            # the bucket's heap entries stay valid: they reach the runtime through it
            bucket.runtime = new_rt
            if bucket.scheduled != bucket.token:
                out.schedule.append((new_rt, bucket))
    for tid, old_cr in old.composites.items():
        new_cr = loaded.composites.get(tid)
        if new_cr is None:
            out.deletes.extend(records.child_firing_deletes(old_cr))
            continue
        out.kept.add(tid)
        new_cr.child_firings = old_cr.child_firings
        new_cr.dirty = old_cr.dirty
        new_cr.stored = old_cr.stored
        if new_cr.dirty:
            out.dirty_composites.append(new_cr)
    for tid, old_mr in old.metric_runtimes.items():
        if loaded.metric_runtimes.get(tid) is old_mr:
            out.kept.add(tid)
        else:
            out.deletes.extend(metrics.deletes(old_mr))
    return out
