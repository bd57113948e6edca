"""Reading and checking the parameters of Prefect's orchestration actions.

Each check raises INVALID_ARGUMENT naming the offending ``executor.<field>``, with Prefect's
wording where it has one (``deployment_id is required``, ``deployment_id is not allowed``).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from automations import executor

Source = Literal["selected", "inferred"]
"""Whether the target is given by id (``selected``) or inferred from the triggering event."""

STATE_TYPES = frozenset(
    {
        "SCHEDULED",
        "PENDING",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "CRASHED",
        "PAUSED",
        "CANCELLING",
    }
)
"""Prefect's ``StateType`` values."""


def _field(name: str) -> str:
    return f"parameters.{name}"


def source(params: Mapping[str, Any]) -> Source:
    """The action's ``source``: ``selected`` (the default) or ``inferred``."""
    value = params.get("source")
    if value is None or value == "selected":
        return "selected"
    if value == "inferred":
        return "inferred"
    raise executor.invalid_argument(
        _field("source"), "source must be 'selected' or 'inferred'", "PREFECT_SOURCE_INVALID"
    )


def as_uuid(value: Any, name: str) -> uuid.UUID:
    """``value`` as a UUID; INVALID_ARGUMENT naming ``executor.<name>`` otherwise."""
    if isinstance(value, str):
        try:
            return uuid.UUID(value.strip())
        except ValueError:
            pass
    raise executor.invalid_argument(_field(name), f"{name} must be a UUID", "PREFECT_ID_INVALID")


def selected_id(params: Mapping[str, Any], name: str) -> tuple[Source, uuid.UUID | None]:
    """The ``source`` and, when selected, the id in ``params[name]`` (e.g. ``deployment_id``).

    As in Prefect, the id is required iff the source is ``selected`` and not allowed when it is
    ``inferred`` (null or empty counts as absent).
    """
    wanted = source(params)
    value = params.get(name)
    present = value is not None and value != ""
    if wanted == "selected" and not present:
        raise executor.invalid_argument(_field(name), f"{name} is required", "PREFECT_ID_MISSING")
    if wanted == "inferred" and present:
        raise executor.invalid_argument(
            _field(name), f"{name} is not allowed", "PREFECT_ID_NOT_ALLOWED"
        )
    return wanted, as_uuid(value, name) if present else None


def optional_object(params: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """``params[name]`` as an object (whole numbers as ints), or None when null or absent."""
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise executor.invalid_argument(
            _field(name), f"{name} must be an object or null", "PREFECT_PARAMETER_INVALID"
        )
    result: dict[str, Any] = executor.as_int_if_whole(value)
    return result


def schedule_after_seconds(params: Mapping[str, Any]) -> float:
    """``schedule_after`` in seconds: a number (or numeric string) at least 0, default 0."""
    value = params.get("schedule_after")
    if value is None:
        return 0.0
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        raise executor.invalid_argument(
            _field("schedule_after"),
            "schedule_after must be a number of seconds, at least 0",
            "PREFECT_SCHEDULE_AFTER_INVALID",
        )
    return seconds


def optional_string(params: Mapping[str, Any], name: str) -> str | None:
    """``params[name]`` as a string, or None when null or absent."""
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise executor.invalid_argument(
            _field(name), f"{name} must be a string", "PREFECT_PARAMETER_INVALID"
        )
    return value


def state_type(params: Mapping[str, Any]) -> str:
    """The required ``state`` of ``change-flow-run-state``: a Prefect ``StateType`` value."""
    value = params.get("state")
    if value is None or value == "":
        raise executor.invalid_argument(
            _field("state"), "state is required", "PREFECT_STATE_MISSING"
        )
    if not isinstance(value, str) or value.upper() not in STATE_TYPES:
        raise executor.invalid_argument(
            _field("state"),
            f"state must be one of {', '.join(sorted(STATE_TYPES))}",
            "PREFECT_STATE_INVALID",
        )
    return value.upper()


def flag(params: Mapping[str, Any], name: str) -> bool:
    """``params[name]`` as a boolean, False when null or absent."""
    value = params.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise executor.invalid_argument(
            _field(name), f"{name} must be true or false", "PREFECT_PARAMETER_INVALID"
        )
    return value
