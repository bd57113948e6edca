"""Checking templates when an automation is written: syntax, limits and Prefect's placeholders."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from automations.actions.templates import _compiling
from automations.domain import actions as actions_
from automations.domain import automations, errors


def validate_template(source: str, *, field: str) -> None:
    """Checks one template's syntax and loop limits.

    Args:
        source: The template text.
        field: Its path, used in the error (e.g. ``payload``).

    Raises:
        errors.InvalidArgument: ``'<field>' is not a valid template: line <n>: <problem>``.
    """
    try:
        _compiling.compile_template(source)
    except _compiling.InvalidTemplate as exc:
        raise errors.InvalidArgument(
            field, f"{field!r} is not a valid template: {exc}", reason="INVALID_TEMPLATE"
        ) from None


def _validate_strings(value: Any, field: str) -> None:
    if isinstance(value, str):
        if _compiling.is_template(value):
            validate_template(value, field=field)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _validate_strings(item, _compiling.join_field(field, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _validate_strings(item, f"{field}[{i}]")


def _invalid_placeholder(field: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(field, message, reason="INVALID_TEMPLATE")


def _validate_hydratable(value: Any, field: str) -> None:
    if not (isinstance(value, Mapping) and _compiling.KIND in value):
        if isinstance(value, Mapping):
            for key, item in value.items():
                _validate_hydratable(item, _compiling.join_field(field, key))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                _validate_hydratable(item, f"{field}[{i}]")
        else:
            _validate_strings(value, field)
        return
    kind = value[_compiling.KIND]
    if kind == "jinja":
        if "template" not in value:
            raise _invalid_placeholder(field, "a jinja placeholder needs a 'template'")
        template = value["template"]
        if isinstance(template, Mapping):
            _validate_hydratable(template, _compiling.join_field(field, "template"))
        elif isinstance(template, str):
            validate_template(template, field=_compiling.join_field(field, "template"))
        else:
            raise _invalid_placeholder(_compiling.join_field(field, "template"), "must be a string")
    elif kind in ("json", "none") and "value" in value:
        inner = value["value"]
        if isinstance(inner, Mapping | list | tuple):
            _validate_hydratable(inner, _compiling.join_field(field, "value"))
        elif kind == "json" and isinstance(inner, str):
            try:
                json.loads(inner)
            except ValueError as exc:
                raise _invalid_placeholder(
                    _compiling.join_field(field, "value"), f"is not valid JSON: {exc}"
                ) from None
    elif kind == "none":
        raise _invalid_placeholder(field, "a 'none' placeholder needs a 'value'")


def validate_action_templates(action: actions_.Action) -> None:
    """Checks every template of one action's parameters.

    Raises:
        errors.InvalidArgument: With the template's path within the action, e.g. ``payload``.
    """
    for key, value in action.parameters.items():
        if key == "type":
            continue
        field = _compiling.join_field("", key)
        if action.type == _compiling.RUN_DEPLOYMENT and key == "parameters":
            _validate_hydratable(value, field)
        else:
            _validate_strings(value, field)


def _collect_names(value: Any, into: set[str]) -> None:
    if isinstance(value, str):
        if _compiling.is_template(value):
            into.update(_compiling.names_in(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            _collect_names(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_names(item, into)


def referenced_names(action: actions_.Action) -> frozenset[str]:
    """The context variables an action's templates refer to (e.g. ``{"event", "flow_run"}``).

    Lets the engine load expensive context objects (Prefect's ``flow_run``, ``deployment``...)
    only for the templates that name them, as Prefect does.
    """
    names: set[str] = set()
    for key, value in action.parameters.items():
        if key != "type":
            _collect_names(value, names)
    return frozenset(names)


def validate_automation_templates(automation: automations.Automation) -> None:
    """Checks every template of an automation's actions (on create and update).

    Raises:
        errors.InvalidArgument: With the template's full path, e.g. ``actions[0].payload`` or
            ``actions_on_trigger[1].parameters.name``, and a message naming the line:
            ``'payload' is not a valid template: line 3: unexpected '}'``.
    """
    groups = (
        ("actions", automation.actions),
        ("actions_on_trigger", automation.actions_on_trigger),
        ("actions_on_resolve", automation.actions_on_resolve),
    )
    for name, group in groups:
        for i, action in enumerate(group):
            try:
                validate_action_templates(action)
            except errors.InvalidArgument as exc:
                raise exc.under(f"{name}[{i}]") from None
