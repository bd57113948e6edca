"""Which requests are processed on the event loop itself rather than on a worker thread.

A small request's work (its body parsed, the template rendered, the events built and validated)
takes tens of microseconds, less than the hop to a worker thread and back: two thread wake-ups and
the interpreter lock passed back and forth with the event loop, which under load left both threads
waiting for the lock rather than working. So a request is processed inline when its body is at
most ``max_body_bytes`` and its webhook has not outrun the inline budget in the last
``demote_seconds``; its render then gets a ``ShortBudget`` (``cpu_seconds`` of CPU time,
``characters`` built). A render that outruns it is thrown away and done again on a worker thread
with the full budget, and its webhook goes to the threads for ``demote_seconds``: one request holds
the event loop (every other request waits) for about ``cpu_seconds`` at most, and a webhook whose
template is expensive pays that at most once per ``demote_seconds``. Larger bodies always go to
the threads (parsing a 5 MiB body takes milliseconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from automations.actions.templates import webhooks as webhook_templates

MAX_BODY_BYTES = 64 * 1024
"""The largest body processed on the event loop."""
CPU_SECONDS = 0.002
"""The CPU time a render on the event loop may take before it is done again on a thread."""
CHARACTERS = 1 << 20
"""The characters a render on the event loop may build in all."""
DEMOTE_SECONDS = 60.0
"""How long a webhook whose render outran the inline budget is rendered on the threads."""


class InlinePolicy:
    """Decides, per request, whether to process it inline and with what budget.

    Args:
        max_body_bytes: The largest body processed inline (0: none is).
        cpu_seconds: The inline render's CPU time.
        characters: The inline render's characters.
        demote_seconds: How long a webhook that outran the budget goes to the threads.
        clock: Monotonic seconds.
    """

    def __init__(
        self,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        cpu_seconds: float = CPU_SECONDS,
        characters: int = CHARACTERS,
        demote_seconds: float = DEMOTE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_body = max_body_bytes
        self._cpu_seconds = cpu_seconds
        self._characters = characters
        self._demote_seconds = demote_seconds
        self._clock = clock
        self._demoted: dict[str, float] = {}  # webhook id -> until when

    def budget(self, webhook_id: str, body_bytes: int) -> webhook_templates.ShortBudget | None:
        """The budget of an inline render of this request, or None to use a worker thread."""
        if body_bytes > self._max_body:
            return None
        if self._demoted:
            until = self._demoted.get(webhook_id)
            if until is not None:
                if self._clock() < until:
                    return None
                del self._demoted[webhook_id]
        return webhook_templates.ShortBudget(self._cpu_seconds, self._characters)

    def ran_out(self, webhook_id: str) -> None:
        """Sends the webhook's requests to the threads for ``demote_seconds``."""
        self._demoted[webhook_id] = self._clock() + self._demote_seconds
