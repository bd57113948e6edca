"""Compound (any / all / N) and sequence triggers: Prefect's ``evaluate_composite_trigger``.

When a child fires:

1. a parent that needs a single firing ("any", ``require`` 1, a one-child sequence) fires at once;
2. otherwise, with ``within`` set, child firings older than ``triggered - within`` are dropped
   (``triggered`` is processing time, not event time), this child's firing replaces its previous
   one (only the latest firing per child is kept), and the parent is ready when
   * compound: at least ``require`` distinct children have a stored firing;
   * sequence: the stored firings sorted by ``triggered`` name the children in declared order;
3. when ready, the stored firings are consumed and the parent fires with the completing child's
   triggering event, no labels, and the consumed firings as ``child_firings``.
"""

from __future__ import annotations

from collections.abc import Callable

from automations.domain import firings, triggers


class CompositeRuntime:
    """The loaded state of one compound or sequence trigger: the latest firing of each child.

    Attributes:
        automation_id: The owning automation.
        trigger: The composite trigger.
        parent: The enclosing composite runtime, or None for the automation's top-level trigger.
        child_firings: Child trigger id -> its latest stored firing, oldest stored first.
        dirty: Child ids whose stored firing changed since the last step.
        stored: Child ids with a persisted record.
        alive: False once unloaded or replaced.
    """

    __slots__ = (
        "automation_id",
        "trigger",
        "trigger_id",
        "parent",
        "child_firings",
        "dirty",
        "stored",
        "alive",
        "required",
        "sequence",
        "within",
        "expected_order",
    )

    def __init__(self, automation_id: str, trigger: triggers.CompositeTrigger) -> None:
        self.automation_id = automation_id
        self.trigger = trigger
        self.trigger_id = trigger.id
        self.parent: CompositeRuntime | None = None
        self.child_firings: dict[str, firings.Firing] = {}
        self.dirty: set[str] = set()
        self.stored: set[str] = set()
        self.alive = True
        self.sequence = isinstance(trigger, triggers.SequenceTrigger)
        self.required = trigger.required_count
        self.within = trigger.within
        self.expected_order = [child.id for child in trigger.triggers]

    def child_fired(
        self, firing: firings.Firing, now: float, new_id: Callable[[str, float], str]
    ) -> firings.Firing | None:
        """Records a child's firing; returns this trigger's own firing when it completes.

        Args:
            firing: The child's firing (``triggered`` is processing time).
            now: Wall time (the parent's firing time).
            new_id: Makes the parent firing's id from a seed and a time.
        """
        if self.required == 1:
            return self._firing((firing,), firing, now, new_id)
        stored = self.child_firings
        if self.within is not None and stored:
            horizon = firing.triggered - self.within
            for child_id in [cid for cid, f in stored.items() if f.triggered < horizon]:
                del stored[child_id]
                self.dirty.add(child_id)
        stored.pop(firing.trigger_id, None)
        stored[firing.trigger_id] = firing
        self.dirty.add(firing.trigger_id)
        current = tuple(stored.values())
        if self.sequence:
            ordered = sorted(current, key=lambda f: f.triggered)
            ready = [f.trigger_id for f in ordered] == self.expected_order
        else:
            ready = len(current) >= self.required
        if not ready:
            return None
        self.dirty.update(stored)
        stored.clear()
        return self._firing(current, firing, now, new_id)

    def _firing(
        self,
        children: tuple[firings.Firing, ...],
        completing: firings.Firing,
        now: float,
        new_id: Callable[[str, float], str],
    ) -> firings.Firing:
        event = completing.triggering_event
        return firings.Firing(
            id=new_id(
                f"{self.automation_id}\x1f{self.trigger_id}\x1f{completing.id}",
                event.occurred if event is not None else now,
            ),
            automation_id=self.automation_id,
            trigger_id=self.trigger_id,
            trigger_type=self.trigger.type,
            posture=None,
            triggered=now,
            triggering_event=completing.triggering_event,
            triggering_labels={},
            child_firings=children,
        )
