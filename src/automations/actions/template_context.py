"""The objects action templates see: Prefect's template context, over our domain dataclasses.

Prefect renders templates with ``automation``, ``event``, ``labels``, ``firing``, ``firings`` and
``events`` (``JinjaTemplateAction._template_context``). This module builds that context. Events,
resources and firings are wrapped in small read-only objects that answer the attribute paths
Prefect's models answer (``event.resource.name``, ``event.resource_in_role['flow-run'].id``,
``labels.prefect.resource.id``...), and that ``tojson`` prints in Prefect's JSON shapes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from automations.domain import automations, events, firings, prefect_json

TemplateContext: TypeAlias = Mapping[str, Any]
"""The variables a template is rendered with (see ``build_context``)."""

UI_URL = "__prefect_ui_url__"
"""The context variable holding the Prefect UI's base URL, for the ``ui_url`` filters."""


class PrefectObject(dict[str, Any]):
    """A Prefect object templates see (``automation``, ``flow_run``, ``deployment`` ...).

    A plain mapping of its JSON (``{{ flow_run.name }}``) that also knows its kind, for the
    ``ui_url`` and ``ui_resource_events_url`` filters.
    """

    __slots__ = ("_kind",)

    def __init__(self, kind: str, data: Mapping[str, Any]) -> None:
        super().__init__(data)
        self._kind = kind

    @property
    def kind(self) -> str:
        """``flow-run``, ``deployment``, ``automation`` ... (``<kind>`` of ``prefect.<kind>.<id>``)."""
        return self._kind


class TemplateDateTime(dt.datetime):
    """A UTC datetime that renders as ISO 8601 (``2024-05-01T12:00:00+00:00``), as Prefect's does."""

    def __str__(self) -> str:
        return self.isoformat()


def template_time(seconds: float) -> TemplateDateTime:
    """Returns seconds since the epoch as a UTC ``TemplateDateTime``."""
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return TemplateDateTime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        tzinfo=dt.UTC,
    )


class LabelDiver:
    """Labels as a tree of attributes, as Prefect's ``LabelDiver``.

    ``diver.prefect.resource.id`` renders the value of the label ``prefect.resource.id``;
    ``diver['prefect.resource.id']`` reads a label by its full name; iterating yields
    ``(label, value)`` pairs.
    """

    __slots__ = ("_children", "_labels", "_value")

    def __init__(self, labels: Mapping[str, str], value: str = "") -> None:
        self._labels = dict(labels)
        self._value = value
        nested: dict[str, dict[str, str]] = {}
        leaves: dict[str, str] = {}
        for key, label_value in self._labels.items():
            head, _, tail = key.partition(".")
            if tail:
                nested.setdefault(head, {})[tail] = label_value
            else:
                leaves[head] = label_value
        children = {
            head: LabelDiver(sub, value=leaves.pop(head, "")) for head, sub in nested.items()
        }
        children.update({head: LabelDiver({}, value=v) for head, v in leaves.items()})
        self._children: dict[str, LabelDiver] = children

    def __str__(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"LabelDiver({self._labels!r}, value={self._value!r})"

    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._labels.items())

    def __getitem__(self, label: str) -> str:
        return self._labels[label]

    def __getattr__(self, name: str) -> LabelDiver:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._children[name]
        except KeyError:
            raise AttributeError(name) from None

    def _as_json(self) -> Any:
        # a leaf prints as its value, a subtree as its labels
        return self._value if self._value else dict(self._labels)


class Resource(Mapping[str, str]):
    """A resource's labels, as Prefect's ``Resource``: a mapping plus ``id``, ``name``, ``labels``."""

    __slots__ = ("_labels",)

    def __init__(self, labels: Mapping[str, str]) -> None:
        self._labels = labels

    def __getitem__(self, label: str) -> str:
        return self._labels[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self._labels)!r})"

    @property
    def id(self) -> str:
        """The ``prefect.resource.id`` label."""
        return self._labels.get(events.RESOURCE_ID, "")

    @property
    def name(self) -> str | None:
        """The ``prefect.resource.name`` label, if any."""
        return self._labels.get(events.RESOURCE_NAME)

    @property
    def labels(self) -> LabelDiver:
        """The labels as a ``LabelDiver`` (``resource.labels.prefect.resource.id``)."""
        return LabelDiver(self._labels)

    def prefect_object_id(self, kind: str) -> str | None:
        """Returns the id part of ``<kind>.<id>`` when this resource is of that kind."""
        head, _, tail = self.id.rpartition(".")
        return tail if head == kind and tail else None

    def _as_json(self) -> Any:
        return dict(self._labels)


class RelatedResource(Resource):
    """A related resource: a ``Resource`` with a ``role``."""

    __slots__ = ()

    @property
    def role(self) -> str:
        """The ``prefect.resource.role`` label."""
        return self._labels.get(events.RESOURCE_ROLE, "")


class TemplateEvent:
    """An event as templates see it (Prefect's ``Event`` attributes)."""

    __slots__ = ("_event",)

    def __init__(self, event: events.Event) -> None:
        self._event = event

    def __repr__(self) -> str:
        return f"TemplateEvent(id={self._event.id!r}, event={self._event.event!r})"

    @property
    def id(self) -> str:
        """The event id."""
        return self._event.id

    @property
    def event(self) -> str:
        """The event name."""
        return self._event.event

    @property
    def occurred(self) -> TemplateDateTime:
        """When it happened (UTC)."""
        return template_time(self._event.occurred)

    @property
    def received(self) -> TemplateDateTime | None:
        """When the engine received it (UTC), if known."""
        return template_time(self._event.received) if self._event.received else None

    @property
    def resource(self) -> Resource:
        """The primary resource."""
        return Resource(self._event.resource)

    @property
    def related(self) -> list[RelatedResource]:
        """The related resources, in order."""
        return [RelatedResource(labels) for labels in self._event.related]

    @property
    def involved_resources(self) -> list[Resource]:
        """The primary resource, then the related ones."""
        return [self.resource, *self.related]

    @property
    def payload(self) -> Mapping[str, Any]:
        """The free-form payload (``payload.key`` and ``payload['key']`` both work)."""
        return self._event.payload

    @property
    def follows(self) -> str | None:
        """The id of the event this one follows, if any."""
        return self._event.follows

    @property
    def resource_in_role(self) -> dict[str, RelatedResource]:
        """Role -> the first related resource with that role."""
        out: dict[str, RelatedResource] = {}
        for resource in self.related:
            out.setdefault(resource.role, resource)
        return out

    @property
    def resources_in_role(self) -> dict[str, list[RelatedResource]]:
        """Role -> every related resource with that role, in order."""
        out: dict[str, list[RelatedResource]] = {}
        for resource in self.related:
            out.setdefault(resource.role, []).append(resource)
        return out

    def find_resource_label(self, label: str) -> str | None:
        """Reads a label of the primary resource, or ``related:<role>:<label>``."""
        return self._event.find_label(label)

    def _as_json(self) -> Any:
        return prefect_json.dump_event(self._event)


class TemplateFiring:
    """A firing as templates see it (Prefect's ``Firing`` attributes)."""

    __slots__ = ("_firing", "_triggers")

    def __init__(self, firing: firings.Firing, triggers: Mapping[str, Any] | None = None) -> None:
        self._firing = firing
        self._triggers = triggers  # the automation's trigger tree (JSON), to look triggers up

    def __repr__(self) -> str:
        return f"TemplateFiring(id={self._firing.id!r})"

    @property
    def id(self) -> str:
        """The firing id."""
        return self._firing.id

    @property
    def trigger_id(self) -> str:
        """The id of the trigger that fired."""
        return self._firing.trigger_id

    @property
    def trigger(self) -> Mapping[str, Any]:
        """The trigger that fired, in Prefect's JSON shape when the automation's is known."""
        found = _find_trigger(self._triggers, self._firing.trigger_id)
        if found is not None:
            return found
        out: dict[str, Any] = {"id": self._firing.trigger_id, "type": self._firing.trigger_type}
        if self._firing.posture is not None:
            out["posture"] = self._firing.posture
        return out

    @property
    def trigger_states(self) -> list[str]:
        """The state the firing carries: ``["Triggered"]`` or ``["Resolved"]``."""
        return [self._firing.state.value]

    @property
    def triggered(self) -> TemplateDateTime:
        """When it fired (UTC)."""
        return template_time(self._firing.triggered)

    @property
    def triggering_labels(self) -> dict[str, str]:
        """The ``for_each`` labels of the bucket that fired."""
        return dict(self._firing.triggering_labels)

    @property
    def triggering_event(self) -> TemplateEvent | None:
        """The event that caused it, if any."""
        event = self._firing.triggering_event
        return None if event is None else TemplateEvent(event)

    @property
    def triggering_firings(self) -> list[TemplateFiring]:
        """For composite triggers, the child firings that completed it."""
        return [TemplateFiring(child, self._triggers) for child in self._firing.child_firings]

    @property
    def triggering_value(self) -> float | None:
        """A metric trigger's value when its state changed; None for other triggers."""
        return self._firing.triggering_value

    def _as_json(self) -> Any:
        event = self.triggering_event
        return {
            "id": self.id,
            "trigger": dict(self.trigger),
            "trigger_states": self.trigger_states,
            "triggered": self.triggered,
            "triggering_labels": self.triggering_labels,
            "triggering_firings": [f._as_json() for f in self.triggering_firings],
            "triggering_event": None if event is None else event._as_json(),
            "triggering_value": self.triggering_value,
        }


def all_firings(firing: firings.Firing) -> list[firings.Firing]:
    """The firing and all its descendants, outer first (pre-order), as Prefect's ``all_firings``."""
    out = [firing]
    for child in firing.child_firings:
        out.extend(all_firings(child))
    return out


def _find_trigger(trigger: object, trigger_id: str) -> Mapping[str, Any] | None:
    if not isinstance(trigger, Mapping):
        return None
    if trigger.get("id") == trigger_id:
        return trigger
    for child in trigger.get("triggers") or ():
        found = _find_trigger(child, trigger_id)
        if found is not None:
            return found
    return None


def build_context(
    *,
    automation: automations.Automation | Mapping[str, Any],
    firing: firings.Firing,
    event: events.Event | None,
    ui_url: str | None = None,
) -> dict[str, Any]:
    """Builds the variables action templates are rendered with.

    Args:
        automation: The automation, as the dataclass or as Prefect's JSON (``dump_automation``):
            templates read ``automation.id``, ``automation.name``, ``automation.tags``...
        firing: The firing the actions run for.
        event: The event the actions see: the triggering event for ``actions``, the
            ``prefect.automation.triggered`` (``.resolved``) event for ``actions_on_trigger``
            (``actions_on_resolve``); None for a firing without one.
        ui_url: The Prefect UI's base URL for the ``ui_url`` filters (None: they give None).

    Returns:
        ``automation``, ``event`` (None when there is none), ``labels`` (the triggering labels as
        a ``LabelDiver``), ``firing``, ``firings`` (the firing tree, outer first) and ``events``
        (every triggering event of that tree, in the same order).
    """
    if isinstance(automation, automations.Automation):
        automation = prefect_json.dump_automation(automation)
    automation_json = PrefectObject("automation", automation)
    tree = all_firings(firing)
    trigger = automation_json.get("trigger")
    wrapped = [TemplateFiring(f, trigger if isinstance(trigger, Mapping) else None) for f in tree]
    return {
        "automation": automation_json,
        "event": None if event is None else TemplateEvent(event),
        "labels": LabelDiver(firing.triggering_labels),
        "firing": wrapped[0],
        "firings": wrapped,
        "events": [TemplateEvent(f.triggering_event) for f in tree if f.triggering_event],
        UI_URL: ui_url,
    }


def to_jsonable(value: Any) -> Any:
    """``json.dumps`` fallback for context objects, datetimes and mappings (raises TypeError)."""
    as_json = getattr(type(value), "_as_json", None)
    if as_json is not None:
        return as_json(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset | tuple) or (
        isinstance(value, Sequence) and not isinstance(value, str | bytes)
    ):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
