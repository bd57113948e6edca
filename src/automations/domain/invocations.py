"""Action invocations: one per (firing, action), written with the firing and dispatched afterwards.

Life of an invocation::

    pending --claim--> running --succeeded--> succeeded
                          |------retry------> pending (due after a backoff)
                          |------failed-----> failed        (permanent error)
                          '---dead letter---> dead_letter   (retries exhausted)
    dead_letter / failed --redrive--> pending

An invocation's ``request`` keeps what dispatching it needs later, even after a restart or an
update of its automation: the action as it was defined when the automation fired, a summary of
the automation for templates and lifecycle events, the ids of the lifecycle events it follows and
its chain depth (the loop guard, ``actions.planning``). It is stored as JSON through
:func:`encode_request` / :func:`decode_request`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import orjson

from automations.domain import actions, automations


class InvocationStatus(enum.StrEnum):
    """Where an invocation is in its life (the strings are what the store keeps)."""

    PENDING = "pending"
    """Waiting to be claimed (new, or a retry waiting for its backoff)."""
    RUNNING = "running"
    """Claimed by the dispatcher and leased until ``next_attempt_at``."""
    SUCCEEDED = "succeeded"
    """The executor (or the engine) carried it out."""
    FAILED = "failed"
    """A permanent failure; redrive brings it back."""
    DEAD_LETTER = "dead_letter"
    """Its retries are exhausted; redrive brings it back."""


REDRIVABLE = frozenset({InvocationStatus.FAILED, InvocationStatus.DEAD_LETTER})
"""The statuses from which an invocation can be redriven."""


@dataclasses.dataclass(frozen=True, slots=True)
class AutomationSummary:
    """What templates, executors and lifecycle events need of the automation that fired.

    Attributes:
        id: The automation's id.
        name: Its display name.
        description: Its description.
        tags: Its tags.
        enabled: Whether it was enabled when it fired.
    """

    id: str
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    enabled: bool = True

    @classmethod
    def of(cls, automation: automations.Automation) -> AutomationSummary:
        """The summary of an automation."""
        return cls(
            id=automation.id,
            name=automation.name,
            description=automation.description,
            tags=tuple(automation.tags),
            enabled=automation.enabled,
        )

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON (what templates see as ``automation``)."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tags": list(self.tags),
            "enabled": self.enabled,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AutomationSummary:
        """Reads :meth:`to_json`'s form (missing keys take their defaults)."""
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or ""),
            description=str(data.get("description") or ""),
            tags=tuple(data.get("tags") or ()),
            enabled=bool(data.get("enabled", True)),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class InvocationRequest:
    """What dispatching an invocation needs, fixed when its automation fired.

    Attributes:
        action: The action as it was defined when the automation fired.
        automation: The automation's summary.
        depth: The chain depth of the event that caused the firing (0 for client events).
        triggered_event_id: The firing's ``prefect.automation.triggered`` event.
        action_triggered_event_id: This invocation's ``prefect.automation.action.triggered``
            event.
        on_trigger: Whether the action is one of ``actions_on_trigger`` or ``actions_on_resolve``
            (its templates see the automation's ``prefect.automation.triggered`` or ``.resolved``
            event rather than the triggering one, as in Prefect).
        origin: The id of the event at the root of the causal tree the firing belongs to (a
            client's event; the firing itself for a deadline's), for the loop guard's budget.
    """

    action: actions.Action
    automation: AutomationSummary
    depth: int = 0
    triggered_event_id: str = ""
    action_triggered_event_id: str = ""
    on_trigger: bool = False
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        """The request as JSON (the store's ``request`` column)."""
        return {
            "action": {"type": self.action.type, **self.action.parameters},
            "automation": self.automation.to_json(),
            "depth": self.depth,
            "triggered_event_id": self.triggered_event_id,
            "action_triggered_event_id": self.action_triggered_event_id,
            "on_trigger": self.on_trigger,
            "origin": self.origin,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InvocationRequest:
        """Reads :meth:`to_json`'s form.

        Rows written before a key existed read with its default (a chain-cut invocation, for
        one, was stored with only ``action`` and ``automation``).
        """
        action = data["action"]
        return cls(
            action=actions.Action(
                type=str(action["type"]),
                parameters={k: v for k, v in action.items() if k != "type"},
            ),
            automation=AutomationSummary.from_json(data["automation"]),
            depth=int(data.get("depth", 0)),
            triggered_event_id=str(data.get("triggered_event_id") or ""),
            action_triggered_event_id=str(data.get("action_triggered_event_id") or ""),
            on_trigger=bool(data.get("on_trigger", False)),
            origin=str(data.get("origin") or ""),
        )


def encode_request(request: InvocationRequest) -> bytes:
    """``request`` as the JSON bytes the store keeps."""
    return orjson.dumps(request.to_json())


def decode_request(data: bytes | str | Mapping[str, Any]) -> InvocationRequest:
    """Reads a request stored by :func:`encode_request` (or already decoded JSON)."""
    return InvocationRequest.from_json(data if isinstance(data, Mapping) else orjson.loads(data))


@dataclasses.dataclass(frozen=True, slots=True)
class Invocation:
    """One action invocation.

    Attributes:
        id: Unique id; the same as ``idempotency_key``.
        automation_id: The automation whose firing produced it.
        firing_id: The firing.
        action_index: The action's index in ``Automation.all_actions()``.
        action_type: The action's ``type``.
        idempotency_key: Deterministic key sent to the executor (unique).
        request: What dispatching it needs.
        status: Where it is in its life.
        attempts: How many times it was claimed.
        next_attempt_at: When it may be claimed next (the lease end while ``running``).
        last_error: The last failure's message.
        created: Insertion time, seconds since the epoch.
        updated: Last change, seconds since the epoch.
        result: What the executor returned (JSON-serializable), once succeeded.
    """

    id: str
    automation_id: str
    firing_id: str
    action_index: int
    action_type: str
    idempotency_key: str
    request: InvocationRequest
    status: InvocationStatus = InvocationStatus.PENDING
    attempts: int = 0
    next_attempt_at: float = 0.0
    last_error: str | None = None
    created: float = 0.0
    updated: float = 0.0
    result: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class Finish:
    """The end of one attempt, as it is recorded.

    Attributes:
        id: The invocation.
        status: ``succeeded``, ``failed``, ``dead_letter``, or ``pending`` (a retry).
        error: The new ``last_error`` (None clears it).
        next_attempt_at: When a retry is due (``pending``); ignored otherwise.
        result: What the executor returned (``succeeded``), JSON-serializable.
    """

    id: str
    status: InvocationStatus
    error: str | None = None
    next_attempt_at: float | None = None
    result: Any = None
