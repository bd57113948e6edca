"""What an attempt of an invocation came to, as handed back to the writer to record."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from automations.actions import planning
from automations.domain import events

SUCCEEDED = "succeeded"
FAILED = "failed"
RETRY = "retry"
DEAD_LETTER = "dead_letter"


@dataclasses.dataclass(slots=True)
class Outcome:
    """The result of one attempt.

    Attributes:
        job: The invocation (as claimed) and its firing.
        status: ``succeeded``, ``failed`` (final), ``retry`` or ``dead_letter``.
        result: The executor's result (``succeeded``).
        error: The error recorded as the invocation's ``last_error``.
        reason: The ``reason`` of the ``action.failed`` event (``failed``, ``dead_letter``).
        details: Merged into the lifecycle event's payload (``template_error``, ...).
        next_attempt_at: When to retry (``retry``).
        emitted: Events to publish with the outcome (``emit-event``, an executor's emitted
            events); they are published only if the outcome is recorded.
        set_enabled: ``(automation_id, enabled)`` for pause- / resume-automation, applied in the
            same transaction as the outcome.
    """

    job: planning.Job
    status: str
    result: Mapping[str, Any] | None = None
    error: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    next_attempt_at: float = 0.0
    emitted: list[events.Event] = dataclasses.field(default_factory=list)
    set_enabled: tuple[str, bool] | None = None
