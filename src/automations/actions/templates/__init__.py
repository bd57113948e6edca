"""Sandboxed Jinja templates in action parameters: checked on write, rendered when actions run.

Any string in an action's parameters (nested in objects and lists too) that contains ``{{``, ``{%``
or ``{#`` is a template. ``run-deployment``'s ``parameters`` follow Prefect's typed placeholders
(``{"__prefect_kind": "jinja" | "json" | "none" | "workspace_variable", ...}``), and a plain string
there that is a single ``{{ expression }}`` keeps the expression's JSON type (Prefect #18907).

The code lives in private modules behind this surface: ``_sandbox`` (the environment, Prefect's
limits and the guards against huge values), ``_compiling`` (syntax, structural limits, the compile
cache), ``_checking`` (at create and update) and ``_rendering`` (when an action runs).
"""

from __future__ import annotations

from automations.actions import template_context
from automations.actions.templates._checking import (
    referenced_names,
    validate_action_templates,
    validate_automation_templates,
    validate_template,
)
from automations.actions.templates._compiling import (
    COMPILED_CACHE_SIZE,
    MAX_NESTING,
    RUN_DEPLOYMENT,
    is_template,
)
from automations.actions.templates._rendering import (
    TemplateRenderError,
    needs_rendering,
    render_parameters,
    render_template,
)
from automations.actions.templates._sandbox import (
    MAX_LOOP_COUNT,
    MAX_NESTED_LOOP_DEPTH,
    MAX_RENDER_CHARACTERS,
    MAX_RENDER_CPU_SECONDS,
    MAX_RENDERED_SIZE,
    MAX_TEMPLATE_RANGE,
    Budget,
    RenderBudgetExceeded,
)

TemplateContext = template_context.TemplateContext
"""The variables templates see (``build_context``'s result)."""
build_context = template_context.build_context

__all__ = [
    "COMPILED_CACHE_SIZE",
    "MAX_RENDER_CHARACTERS",
    "MAX_NESTING",
    "MAX_RENDER_CPU_SECONDS",
    "MAX_LOOP_COUNT",
    "MAX_NESTED_LOOP_DEPTH",
    "MAX_RENDERED_SIZE",
    "MAX_TEMPLATE_RANGE",
    "RUN_DEPLOYMENT",
    "Budget",
    "RenderBudgetExceeded",
    "TemplateContext",
    "TemplateRenderError",
    "build_context",
    "is_template",
    "needs_rendering",
    "referenced_names",
    "render_parameters",
    "render_template",
    "validate_action_templates",
    "validate_automation_templates",
    "validate_template",
]
