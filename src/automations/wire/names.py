"""Resource names (AIP-122) and etags of the ``automations.v1`` API, parsed and printed.

Names are ``automations/{automation}``, ``automations/{automation}/firings/{firing}`` and
``automations/{automation}/invocations/{invocation}``.
"""

from __future__ import annotations

import re

from automations.domain import automations, errors

AUTOMATIONS_COLLECTION = "automations"
"""The collection id of automations: names are ``automations/{automation}``."""

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,127}$")


def automation_name(automation_id: str) -> str:
    """Returns the resource name ``automations/{automation_id}``."""
    return f"{AUTOMATIONS_COLLECTION}/{automation_id}"


def automation_id_from_name(name: str, *, field: str = "name") -> str:
    """Returns the id in a resource name ``automations/{automation}``.

    Raises:
        errors.InvalidArgument: ``name`` is not an automation's resource name (reason
            ``INVALID_RESOURCE_NAME``).
    """
    collection, _, automation_id = name.partition("/")
    if collection != AUTOMATIONS_COLLECTION or not _ID_PATTERN.match(automation_id):
        raise errors.InvalidArgument(
            field,
            f"{name!r} is not an automation name (automations/{{automation}})",
            reason="INVALID_RESOURCE_NAME",
        )
    return automation_id


def firing_name(automation_id: str, firing_id: str) -> str:
    """Returns the resource name ``automations/{automation_id}/firings/{firing_id}``."""
    return f"{AUTOMATIONS_COLLECTION}/{automation_id}/firings/{firing_id}"


def invocation_name(automation_id: str, invocation_id: str) -> str:
    """``automations/{automation}/invocations/{invocation}``."""
    return f"automations/{automation_id}/invocations/{invocation_id}"


def invocation_id_from_name(name: str, *, field: str = "name") -> str:
    """The invocation id of ``automations/{automation}/invocations/{invocation}``."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != "automations" or parts[2] != "invocations" or not parts[3]:
        raise errors.InvalidArgument(
            field,
            "must be automations/{automation}/invocations/{invocation}",
            reason="INVALID_RESOURCE_NAME",
        )
    return parts[3]


def etag(automation: automations.Automation) -> str:
    """Returns the automation's etag: its version, which every update increments."""
    return str(automation.version)
