"""Actions: what an automation does when it fires.

An action is its Prefect ``type`` plus its parameters under Prefect's field names (and the inline
forms that replace Prefect's blocks, e.g. ``url`` on ``call-webhook``; see docs/actions.md). The
set of types is open: a type served by a third-party executor is as valid as a bundled one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

PREFECT_ORCHESTRATION_ACTION_TYPES: tuple[str, ...] = (
    "run-deployment",
    "pause-deployment",
    "resume-deployment",
    "cancel-flow-run",
    "suspend-flow-run",
    "resume-flow-run",
    "change-flow-run-state",
    "delete-flow-run",
    "pause-work-pool",
    "resume-work-pool",
    "pause-work-queue",
    "resume-work-queue",
)
"""Prefect's actions on its own objects (served by the bundled ``prefect`` executor)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """One action of an automation.

    Attributes:
        type: The action type, e.g. ``call-webhook`` or a third party's ``acme.page-oncall``.
        parameters: Everything else, under Prefect's field names (JSON values).
    """

    type: str
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
