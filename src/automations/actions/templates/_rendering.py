"""Rendering an action's parameters when it runs, and Prefect's typed placeholders."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jinja2

from automations.actions import template_context
from automations.actions.templates import _compiling, _sandbox
from automations.domain import actions as actions_


class TemplateRenderError(Exception):
    """A template of an action's parameters failed to render; the action fails for good.

    Attributes:
        field: Path of the template within the action's parameters, e.g. ``payload`` or
            ``parameters.name``.
        source: The template text ("" when the failure is in a placeholder, not a template).
        error: The underlying exception.
        message: Prefect's failure reason, ``Template rendering failed: <repr of the error>``.
    """

    def __init__(self, field: str, source: str, error: BaseException) -> None:
        self.field = field
        self.source = source
        self.error = error
        self.message = f"Template rendering failed: {error!r}"
        super().__init__(self.message)


def _compiled(source: str, field: str) -> _compiling.Compiled:
    try:
        return _compiling.compile_template(source)
    except _compiling.InvalidTemplate as exc:
        raise TemplateRenderError(
            field, source, jinja2.TemplateSyntaxError(exc.message, exc.lineno)
        ) from None


def render_template(
    source: str, context: template_context.TemplateContext, *, field: str = ""
) -> str:
    """Renders one template to a string (a string without template markers is returned as is).

    Within the budget of the caller's :func:`render_parameters`, or within a budget of its own.

    Raises:
        TemplateRenderError: When it is invalid, fails, renders more than
            ``_sandbox.MAX_RENDERED_SIZE`` characters or exceeds its budget.
    """
    if not _compiling.is_template(source):
        return source
    template = _compiled(source, field).template
    with _sandbox.budget():
        try:
            size = 0
            parts: list[str] = []
            for chunk in template.generate(context):
                size += len(chunk)
                _sandbox.refuse_size(size)
                parts.append(chunk)
            return "".join(parts)
        except Exception as exc:
            raise TemplateRenderError(field, source, exc) from exc


def _render_typed(source: str, context: template_context.TemplateContext, field: str) -> Any:
    """A single ``{{ expr }}`` keeps its JSON type; anything else renders as a string."""
    expression = _compiled(source, field).expression
    if expression is not None:
        try:
            value = expression(context)
        except Exception as exc:
            raise TemplateRenderError(field, source, exc) from exc
        if not isinstance(value, jinja2.Undefined):
            try:
                text = json.dumps(value, default=_sandbox.json_default)
            except (TypeError, ValueError):
                pass  # not JSON: the string rendering it is
            else:
                if len(text) > _sandbox.MAX_RENDERED_SIZE:
                    raise TemplateRenderError(
                        field, source, OverflowError("the rendered value is too large")
                    )
                return json.loads(text)
    return render_template(source, context, field=field)


def _render_strings(value: Any, context: template_context.TemplateContext, field: str) -> Any:
    if isinstance(value, str):
        return render_template(value, context, field=field)
    if isinstance(value, Mapping):
        return {
            k: _render_strings(v, context, _compiling.join_field(field, k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_render_strings(v, context, f"{field}[{i}]") for i, v in enumerate(value)]
    return value


class _Removed:
    """Prefect's ``RemoveValue``: a placeholder without its value disappears from its parent."""


_REMOVED = _Removed()


def _placeholder_error(field: str, message: str) -> TemplateRenderError:
    return TemplateRenderError(field, "", ValueError(message))


def _hydrate(value: Any, context: template_context.TemplateContext, field: str) -> Any:
    if isinstance(value, Mapping):
        if _compiling.KIND in value:
            return _hydrate_placeholder(value, context, field)
        out: dict[str, Any] = {}
        for key, item in value.items():
            hydrated = _hydrate(item, context, _compiling.join_field(field, key))
            if hydrated is not _REMOVED:
                out[key] = hydrated
        return out
    if isinstance(value, list | tuple):
        items = (_hydrate(item, context, f"{field}[{i}]") for i, item in enumerate(value))
        return [item for item in items if item is not _REMOVED]
    if isinstance(value, str) and _compiling.is_template(value):
        return _render_typed(value, context, field)
    return value


def _hydrate_placeholder(
    value: Mapping[str, Any], context: template_context.TemplateContext, field: str
) -> Any:
    kind = value[_compiling.KIND]
    if kind == "jinja":
        if "template" not in value:
            raise _placeholder_error(field, "Missing 'template' key in __prefect object")
        template = value["template"]
        inner_field = _compiling.join_field(field, "template")
        if isinstance(template, Mapping):
            template = _hydrate(template, context, inner_field)
        if not isinstance(template, str):
            raise _placeholder_error(inner_field, "a jinja template must be a string")
        return render_template(template, context, field=inner_field)
    if kind == "json":
        if "value" not in value:
            return _REMOVED
        inner = value["value"]
        inner_field = _compiling.join_field(field, "value")
        if isinstance(inner, Mapping):
            inner = _hydrate(inner, context, inner_field)
        if not isinstance(inner, str):
            return inner
        try:
            return json.loads(inner)
        except ValueError as exc:
            raise _placeholder_error(inner_field, f"Invalid JSON: {exc}") from exc
    if kind == "none":
        if "value" not in value:
            raise _placeholder_error(field, "Missing 'value' key in __prefect object")
        return _hydrate(value["value"], context, _compiling.join_field(field, "value"))
    if kind == "workspace_variable":
        if "variable_name" not in value:
            return _REMOVED
        raise _placeholder_error(
            field,
            f"workspace variables are not supported (variable {value['variable_name']!r})",
        )
    return value.get("value")


def _holds_template(value: Any) -> bool:
    if isinstance(value, str):
        return _compiling.is_template(value)
    if isinstance(value, Mapping):
        return any(_holds_template(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_template(item) for item in value)
    return False


def needs_rendering(action: actions_.Action) -> bool:
    """Whether :func:`render_parameters` would change anything (else the context is not needed)."""
    if action.type == _compiling.RUN_DEPLOYMENT and "parameters" in action.parameters:
        return True  # typed placeholders are resolved even without a template string
    return any(_holds_template(v) for k, v in action.parameters.items() if k != "type")


def render_parameters(
    action: actions_.Action,
    context: template_context.TemplateContext,
    *,
    limits: _sandbox.Budget | None = None,
) -> dict[str, Any]:
    """Returns the action's parameters with every template rendered.

    Strings without template markers and non-string values are returned untouched. For
    ``run-deployment``, ``parameters`` are hydrated as Prefect does: placeholders are resolved and a
    plain ``"{{ expr }}"`` keeps the expression's JSON type (an int stays an int).

    All of the action's templates share one budget (``_sandbox.Budget``): CPU time of the
    rendering thread and characters built. Call it off the event loop: a template may use its
    whole budget.

    Args:
        action: The action whose parameters to render.
        context: The template variables, from ``build_context``.
        limits: The budget (the default one when None).

    Raises:
        TemplateRenderError: The first template that fails, with its ``field`` and ``source``.
    """
    with _sandbox.budget(limits):
        return _render_parameters(action, context)


def _render_parameters(
    action: actions_.Action, context: template_context.TemplateContext
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in action.parameters.items():
        field = _compiling.join_field("", key)
        if key == "type":
            out[key] = value
        elif action.type == _compiling.RUN_DEPLOYMENT and key == "parameters":
            hydrated = _hydrate(value, context, field)
            out[key] = {} if hydrated is _REMOVED else hydrated
        else:
            out[key] = _render_strings(value, context, field)
    return out
