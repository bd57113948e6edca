"""The automation resource: a trigger plus actions."""

from __future__ import annotations

import dataclasses

from automations.domain import actions as actions_
from automations.domain import triggers


@dataclasses.dataclass(frozen=True, slots=True)
class Automation:
    """An automation, in Prefect's model.

    Attributes:
        id: Server-assigned id (a UUID string).
        name: Required display name.
        description: Free text.
        enabled: Disabled automations are unloaded from the engine.
        tags: Free-form tags.
        trigger: When it fires.
        actions: What it does when it fires.
        actions_on_trigger: Run after ``actions`` on a Triggered firing (they see the
            ``prefect.automation.triggered`` event as their event).
        actions_on_resolve: Run on a Resolved firing (never produced by Prefect OSS semantics).
        owner_resource: Optional owning resource id, e.g. ``prefect.deployment.<id>``.
        created: Creation time, seconds since the epoch.
        updated: Last update time, seconds since the epoch.
        version: Incremented on every update; the etag.
    """

    id: str
    name: str
    trigger: triggers.Trigger
    actions: tuple[actions_.Action, ...]
    description: str = ""
    enabled: bool = True
    tags: tuple[str, ...] = ()
    actions_on_trigger: tuple[actions_.Action, ...] = ()
    actions_on_resolve: tuple[actions_.Action, ...] = ()
    owner_resource: str | None = None
    created: float = 0.0
    updated: float = 0.0
    version: int = 1

    def all_actions(self) -> tuple[actions_.Action, ...]:
        """Actions in Prefect's ``action_index`` order: actions, on_trigger, on_resolve."""
        return self.actions + self.actions_on_trigger + self.actions_on_resolve
