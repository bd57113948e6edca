"""Resource names (AIP-122) and etags of the ``automations.v1`` API, parsed and printed.

Names are ``automations/{automation}``, ``automations/{automation}/firings/{firing}`` and
``automations/{automation}/actionInvocations/{action_invocation}``. In the names of firings and
action invocations, ``-`` may stand for the automation (AIP-159): their ids are unique on their
own.

An automation id has one rule, :data:`AUTOMATION_ID_RULE`, checked by
:func:`check_automation_id` both where an id is chosen (``CreateAutomation.automation_id``) and
where one is read back out of a name, so that every id the API accepts can be used in a name.
"""

from __future__ import annotations

import re

from automations.domain import automations, errors

AUTOMATIONS_COLLECTION = "automations"
"""The collection id of automations: names are ``automations/{automation}``."""
FIRINGS_COLLECTION = "firings"
"""The collection id of an automation's firings."""
ACTION_INVOCATIONS_COLLECTION = "actionInvocations"
"""The collection id of an automation's action invocations (the plural of ActionInvocation)."""
LEGACY_ACTION_INVOCATIONS_COLLECTION = "invocations"
"""The collection id action invocations' names had before; still accepted in requests."""
ANY_AUTOMATION = "-"
"""The wildcard that stands for any automation in a firing's or an invocation's name."""

MAX_AUTOMATION_ID_LENGTH = 63
"""The longest automation id that is not a UUID (an RFC 1034 label)."""
AUTOMATION_ID_RULE = (
    "1 to 63 characters of lower-case letters, digits and '-', starting with a letter and not "
    "ending with '-' (AIP-122), or a UUID in lower-case hex (e.g. one the server picks)"
)
"""The rule every automation id follows, as error messages and the proto state it."""

_LABEL = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
# Firing and invocation ids are made by the server (UUIDs); a name's segment is only checked for
# shape here, and an unknown id is NOT_FOUND.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.~-]{0,127}")


def automation_id_problem(automation_id: str) -> str | None:
    """Returns what is wrong with an automation id, or None if it follows the rule.

    The rule is :data:`AUTOMATION_ID_RULE`: an RFC 1034 label in lower case, or a lower-case UUID
    (``str(uuid.uuid4())`` passes).
    """
    if _LABEL.fullmatch(automation_id) or _UUID.fullmatch(automation_id):
        return None
    if not automation_id:
        return "it is empty"
    bad = sorted({c for c in automation_id if c not in _ALLOWED})
    if any(c.isupper() for c in bad):
        return "it has upper-case letters"
    if bad:
        return f"it has {', '.join(repr(c) for c in bad)}"
    if len(automation_id) > MAX_AUTOMATION_ID_LENGTH:
        return f"it is {len(automation_id)} characters long"
    if not automation_id[0].isalpha():
        return f"it starts with {automation_id[0]!r}"
    return "it ends with '-'"


def check_automation_id(
    automation_id: str, *, field: str = "automation_id", reason: str = "INVALID_ID"
) -> str:
    """Returns ``automation_id`` if it follows :data:`AUTOMATION_ID_RULE`.

    Args:
        automation_id: The id to check.
        field: The request field to name in the error.
        reason: The error's AIP-193 reason.

    Raises:
        errors.InvalidArgument: On ``field``, saying what is wrong and what the rule is.
    """
    problem = automation_id_problem(automation_id)
    if problem is not None:
        raise errors.InvalidArgument(
            field,
            f"{automation_id!r} is not a valid automation id ({problem}): an id is "
            f"{AUTOMATION_ID_RULE}",
            reason=reason,
        )
    return automation_id


def automation_name(automation_id: str) -> str:
    """Returns the resource name ``automations/{automation_id}``."""
    return f"{AUTOMATIONS_COLLECTION}/{automation_id}"


def automation_id_from_name(name: str, *, field: str = "name") -> str:
    """Returns the id in a resource name ``automations/{automation}``.

    Raises:
        errors.InvalidArgument: ``name`` is not an automation's resource name, or its id breaks
            :data:`AUTOMATION_ID_RULE` (reason ``INVALID_RESOURCE_NAME``).
    """
    collection, _, automation_id = name.partition("/")
    if collection != AUTOMATIONS_COLLECTION or "/" in automation_id:
        raise _not_a_name(name, "automations/{automation}", field=field)
    return _automation_segment(name, automation_id, field=field)


def firing_name(automation_id: str, firing_id: str) -> str:
    """Returns the resource name ``automations/{automation_id}/firings/{firing_id}``."""
    return f"{AUTOMATIONS_COLLECTION}/{automation_id}/{FIRINGS_COLLECTION}/{firing_id}"


def firing_ids_from_name(name: str, *, field: str = "name") -> tuple[str | None, str]:
    """Returns the automation id (None for ``-``) and the firing id of a firing's name.

    Raises:
        errors.InvalidArgument: ``name`` is not ``automations/{automation}/firings/{firing}``
            (reason ``INVALID_RESOURCE_NAME``).
    """
    return _child_ids(
        name, (FIRINGS_COLLECTION,), "automations/{automation}/firings/{firing}", field=field
    )


def invocation_name(automation_id: str, invocation_id: str) -> str:
    """Returns ``automations/{automation_id}/actionInvocations/{invocation_id}``."""
    return (
        f"{AUTOMATIONS_COLLECTION}/{automation_id}/{ACTION_INVOCATIONS_COLLECTION}/{invocation_id}"
    )


def invocation_ids_from_name(name: str, *, field: str = "name") -> tuple[str | None, str]:
    """Returns the automation id (None for ``-``) and the invocation id of an invocation's name.

    The collection is ``actionInvocations``; the older ``invocations`` is accepted too.

    Raises:
        errors.InvalidArgument: ``name`` is not
            ``automations/{automation}/actionInvocations/{action_invocation}`` (reason
            ``INVALID_RESOURCE_NAME``).
    """
    return _child_ids(
        name,
        (ACTION_INVOCATIONS_COLLECTION, LEGACY_ACTION_INVOCATIONS_COLLECTION),
        "automations/{automation}/actionInvocations/{action_invocation}",
        field=field,
    )


def etag(automation: automations.Automation) -> str:
    """Returns the automation's etag: its version, which every update increments."""
    return str(automation.version)


def _child_ids(
    name: str, collections: tuple[str, ...], pattern: str, *, field: str
) -> tuple[str | None, str]:
    parts = name.split("/")
    if (
        len(parts) != 4
        or parts[0] != AUTOMATIONS_COLLECTION
        or parts[2] not in collections
        or not _SEGMENT.fullmatch(parts[3])
    ):
        raise _not_a_name(name, pattern, field=field)
    if parts[1] == ANY_AUTOMATION:
        return None, parts[3]
    return _automation_segment(name, parts[1], field=field), parts[3]


def _automation_segment(name: str, automation_id: str, *, field: str) -> str:
    problem = automation_id_problem(automation_id)
    if problem is not None:
        raise errors.InvalidArgument(
            field,
            f"{name!r} does not name an automation: {automation_id!r} is not a valid automation "
            f"id ({problem}); an id is {AUTOMATION_ID_RULE}",
            reason="INVALID_RESOURCE_NAME",
        )
    return automation_id


def _not_a_name(name: str, pattern: str, *, field: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        field,
        f"{name!r} is not a resource name of the form {pattern}",
        reason="INVALID_RESOURCE_NAME",
    )
