"""Sandboxed Jinja templates in action parameters: checked on write, rendered when actions run.

Any string in an action's parameters (nested in objects and lists too) that contains ``{{``, ``{%``
or ``{#`` is a template. ``run-deployment``'s ``parameters`` follow Prefect's typed placeholders
(``{"__prefect_kind": "jinja" | "json" | "none" | "workspace_variable", ...}``), and a plain string
there that is a single ``{{ expression }}`` keeps the expression's JSON type (Prefect #18907).

Templates run in one ``ImmutableSandboxedEnvironment`` as Prefect's do (``user_templates.py``):
undefined names render as "", unsafe attributes (``__class__``) render as "", collections cannot be
mutated, ``range()`` is capped at 100 items, a template holds at most 10 ``for`` loops nested at
most 2 deep, and nothing can be extended, included or imported. On top of Prefect's limits a
rendered template is capped at ``MAX_RENDERED_SIZE`` characters, and the obvious ways to build a
huge string in one expression (``'x' * 10**9``, ``'%999999999s'``, ``ljust``...) are refused.
"""

from __future__ import annotations

import functools
import json
import re
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jinja2
from jinja2 import filters as jinja_filters
from jinja2 import meta as jinja_meta
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from automations.actions import template_context
from automations.domain import actions as actions_
from automations.domain import automations, errors

MAX_TEMPLATE_RANGE = 100
"""The most items ``range()`` may produce in a template (Prefect's ``MAX_TEMPLATE_RANGE``)."""
MAX_LOOP_COUNT = 10
"""The most ``for`` loops one template may contain (Prefect's ``MAX_LOOP_COUNT``)."""
MAX_NESTED_LOOP_DEPTH = 2
"""How deep ``for`` loops may nest (Prefect's ``MAX_NESTED_LOOP_DEPTH``)."""
MAX_RENDERED_SIZE = 1 << 20
"""The most characters one rendered template (or one value built inside it) may have."""
COMPILED_CACHE_SIZE = 4096
"""How many compiled templates are kept, keyed by their source."""

RUN_DEPLOYMENT = "run-deployment"
"""The action type whose ``parameters`` use Prefect's typed placeholders."""

TemplateContext = template_context.TemplateContext
build_context = template_context.build_context

_MARKERS = ("{{", "{%", "{#")
_KIND = "__prefect_kind"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_FLOW_RUN_ID = re.compile(
    r"flow-run[/.]([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", re.IGNORECASE
)
# a %-format width or precision given by an argument (*), or of 7 digits or more
_WIDE_PERCENT = re.compile(r"%[-#0 +]*(\*|\d{7,}|\d*\.(\*|\d{7,}))")
# a {}-format spec with a width of 7 digits or more, or one taken from an argument ({:{w}})
_WIDE_BRACE = re.compile(r"\{[^{}]*:[^{}]*(\d{7,}|\{)")
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_MAX_POWER_BITS = 1 << 16


def is_template(value: str) -> bool:
    """Whether a parameter string is a template (contains ``{{``, ``{%`` or ``{#``)."""
    return any(marker in value for marker in _MARKERS)


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


# ------------------------------------------------------------------------------- the environment


def _refuse_size(size: int) -> None:
    if size > MAX_RENDERED_SIZE:
        raise OverflowError(
            f"the result would be larger than MAX_RENDERED_SIZE ({MAX_RENDERED_SIZE} characters)"
        )


def _refuse_wide_format(fmt: str, pattern: re.Pattern[str]) -> None:
    if pattern.search(fmt):
        raise OverflowError("format widths of a million characters or more are not allowed")


def _capped_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_TEMPLATE_RANGE:
        raise OverflowError(
            f"Range too big. The sandbox blocks ranges larger than {MAX_TEMPLATE_RANGE=}."
        )
    return rng


class _RefusingLoader(jinja2.BaseLoader):
    """Answers every ``extends``/``include``/``import`` with a clear refusal."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        raise jinja2.TemplateNotFound(
            template,
            f"templates cannot extend, include or import other templates (asked for {template!r})",
        )


class _UserTemplateEnvironment(ImmutableSandboxedEnvironment):
    """Prefect's ``UserTemplateEnvironment`` plus guards against huge intermediate values."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=jinja2.ChainableUndefined,
            autoescape=False,
            enable_async=False,
            loader=_RefusingLoader(),
        )
        self.globals["range"] = _capped_range
        self.filters.update(
            {
                "tojson": _tojson,
                "flow_run_id": _flow_run_id,
                "center": _center,
                "indent": _indent,
                "replace": _replace,
                "join": _join_filter,
                "format": _format,
            }
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuses ``*``, ``**`` and ``%`` whose result would be huge, then applies them."""
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                    _refuse_size(len(sequence) * times)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if abs(left).bit_length() * right > _MAX_POWER_BITS:
                    raise OverflowError("the power is too large")
        elif isinstance(left, str):
            _refuse_wide_format(left, _WIDE_PERCENT)
        return super().call_binop(context, operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Refuses string methods whose result would be huge, then calls ``obj``."""
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str) and isinstance(obj, types.BuiltinMethodType):
            name = obj.__name__
            if name in _WIDTH_METHODS and args and isinstance(args[0], int):
                _refuse_size(args[0])
            elif name == "expandtabs":
                tabsize = args[0] if args and isinstance(args[0], int) else 8
                _refuse_size(len(owner) * max(tabsize, 1))
            elif name == "replace" and len(args) >= 2:
                _refuse_size(len(owner) + owner.count(str(args[0])) * len(str(args[1])))
            elif name == "join" and args:
                items = list(args[0])
                _refuse_size(len(owner) * len(items) + sum(len(str(i)) for i in items))
                args = (items, *args[1:])
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Refuses ``str.format`` with huge widths, else sandboxes it as Jinja does."""
        wrapper = super().wrap_str_format(value)
        if wrapper is not None:
            _refuse_wide_format(value.__self__, _WIDE_BRACE)
        return wrapper


def _json_default(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        return None
    return template_context.to_jsonable(value)


def _tojson(value: Any, indent: int | None = None) -> str:
    """Prints any context value as JSON (events, resources, firings, datetimes; undefined: null)."""
    return json.dumps(value, default=_json_default, indent=indent)


def _flow_run_id(value: Any) -> str:
    """Extracts the id from ``.../flow-run/<uuid>`` (or ``prefect.flow-run.<uuid>``); "" if none."""
    match = _FLOW_RUN_ID.search(str(value))
    return match.group(1) if match else ""


def _center(value: str, width: int = 80) -> str:
    _refuse_size(width)
    return jinja_filters.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    step = width if isinstance(width, int) else len(str(width))
    _refuse_size(len(str(s)) + (str(s).count("\n") + 1) * step)
    return jinja_filters.do_indent(s, width, first, blank)


@jinja2.pass_eval_context
def _replace(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    _refuse_size(len(text) + text.count(str(old)) * len(str(new)))
    return jinja_filters.do_replace(eval_ctx, s, old, new, count)


@jinja2.pass_eval_context
def _join_filter(
    eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    items = list(value)
    _refuse_size(len(str(d)) * len(items))
    return jinja_filters.sync_do_join(eval_ctx, items, d, attribute)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _refuse_wide_format(str(value), _WIDE_PERCENT)
    return jinja_filters.do_format(value, *args, **kwargs)


_ENV = _UserTemplateEnvironment()


# ------------------------------------------------------------------------------------ compiling


class _InvalidTemplate(Exception):
    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno
        self.message = message


class _Compiled:
    """A checked template, and its single expression when the template is only ``{{ expr }}``."""

    __slots__ = ("expression", "template")

    def __init__(self, template: jinja2.Template, expression: TemplateExpression | None) -> None:
        self.template = template
        self.expression = expression


def _check_structure(root: nodes.Template) -> None:
    for node in root.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise _InvalidTemplate(
            node.lineno, "templates cannot extend, include or import other templates"
        )
    loops = list(root.find_all(nodes.For))
    if len(loops) > MAX_LOOP_COUNT:
        raise _InvalidTemplate(
            loops[MAX_LOOP_COUNT].lineno,
            f"contains {len(loops)} for loops; a template may contain at most {MAX_LOOP_COUNT}",
        )
    _check_nesting(root, 0)


def _check_nesting(node: nodes.Node, depth: int) -> None:
    if isinstance(node, nodes.For):
        depth += 1
        if depth > MAX_NESTED_LOOP_DEPTH:
            raise _InvalidTemplate(
                node.lineno,
                f"nests for loops {depth} deep; loops may nest at most {MAX_NESTED_LOOP_DEPTH} deep",
            )
    for child in node.iter_child_nodes():
        _check_nesting(child, depth)


def _parse(source: str) -> nodes.Template:
    try:
        return _ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise _InvalidTemplate(exc.lineno, exc.message or "invalid syntax") from None


def _single_expression(source: str) -> TemplateExpression | None:
    body = _parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    expr = body[0].nodes[0]
    if isinstance(expr, nodes.TemplateData):
        return None
    assign = nodes.Assign(nodes.Name("result", "store"), expr, lineno=expr.lineno)
    return TemplateExpression(
        _ENV.from_string(nodes.Template([assign], lineno=1)), undefined_to_none=False
    )


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compile(source: str) -> _Compiled:
    root = _parse(source)
    _check_structure(root)
    try:
        template = _ENV.from_string(root)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter
        raise _InvalidTemplate(exc.lineno, exc.message or "invalid syntax") from None
    return _Compiled(template, _single_expression(source))


# ----------------------------------------------------------------------------------- validating


def _join(prefix: str, key: object) -> str:
    name = str(key)
    if _IDENTIFIER.match(name):
        return f"{prefix}.{name}" if prefix else name
    return f"{prefix}[{name!r}]"


def validate_template(source: str, *, field: str) -> None:
    """Checks one template's syntax and loop limits.

    Args:
        source: The template text.
        field: Its path, used in the error (e.g. ``payload``).

    Raises:
        errors.InvalidArgument: ``'<field>' is not a valid template: line <n>: <problem>``.
    """
    try:
        _compile(source)
    except _InvalidTemplate as exc:
        raise errors.InvalidArgument(
            field, f"{field!r} is not a valid template: {exc}", reason="INVALID_TEMPLATE"
        ) from None


def _validate_strings(value: Any, field: str) -> None:
    if isinstance(value, str):
        if is_template(value):
            validate_template(value, field=field)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _validate_strings(item, _join(field, key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _validate_strings(item, f"{field}[{i}]")


def _invalid_placeholder(field: str, message: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(field, message, reason="INVALID_TEMPLATE")


def _validate_hydratable(value: Any, field: str) -> None:
    if not (isinstance(value, Mapping) and _KIND in value):
        if isinstance(value, Mapping):
            for key, item in value.items():
                _validate_hydratable(item, _join(field, key))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                _validate_hydratable(item, f"{field}[{i}]")
        else:
            _validate_strings(value, field)
        return
    kind = value[_KIND]
    if kind == "jinja":
        if "template" not in value:
            raise _invalid_placeholder(field, "a jinja placeholder needs a 'template'")
        template = value["template"]
        if isinstance(template, Mapping):
            _validate_hydratable(template, _join(field, "template"))
        elif isinstance(template, str):
            validate_template(template, field=_join(field, "template"))
        else:
            raise _invalid_placeholder(_join(field, "template"), "must be a string")
    elif kind in ("json", "none") and "value" in value:
        inner = value["value"]
        if isinstance(inner, Mapping | list | tuple):
            _validate_hydratable(inner, _join(field, "value"))
        elif kind == "json" and isinstance(inner, str):
            try:
                json.loads(inner)
            except ValueError as exc:
                raise _invalid_placeholder(
                    _join(field, "value"), f"is not valid JSON: {exc}"
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
        field = _join("", key)
        if action.type == RUN_DEPLOYMENT and key == "parameters":
            _validate_hydratable(value, field)
        else:
            _validate_strings(value, field)


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _names_in(source: str) -> frozenset[str]:
    try:
        return frozenset(jinja_meta.find_undeclared_variables(_ENV.parse(source)))
    except jinja2.TemplateSyntaxError:
        return frozenset()


def _collect_names(value: Any, into: set[str]) -> None:
    if isinstance(value, str):
        if is_template(value):
            into.update(_names_in(value))
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


# ------------------------------------------------------------------------------------ rendering


def _compiled(source: str, field: str) -> _Compiled:
    try:
        return _compile(source)
    except _InvalidTemplate as exc:
        raise TemplateRenderError(
            field, source, jinja2.TemplateSyntaxError(exc.message, exc.lineno)
        ) from None


def render_template(source: str, context: TemplateContext, *, field: str = "") -> str:
    """Renders one template to a string (a string without template markers is returned as is).

    Raises:
        TemplateRenderError: When it is invalid, fails, or renders more than
            ``MAX_RENDERED_SIZE`` characters.
    """
    if not is_template(source):
        return source
    template = _compiled(source, field).template
    try:
        size = 0
        parts: list[str] = []
        for chunk in template.generate(context):
            size += len(chunk)
            _refuse_size(size)
            parts.append(chunk)
        return "".join(parts)
    except Exception as exc:
        raise TemplateRenderError(field, source, exc) from exc


def _render_typed(source: str, context: TemplateContext, field: str) -> Any:
    """A single ``{{ expr }}`` keeps its JSON type; anything else renders as a string."""
    expression = _compiled(source, field).expression
    if expression is not None:
        try:
            value = expression(context)
        except Exception as exc:
            raise TemplateRenderError(field, source, exc) from exc
        if not isinstance(value, jinja2.Undefined):
            try:
                text = json.dumps(value, default=_json_default)
            except (TypeError, ValueError):
                pass  # not JSON: the string rendering it is
            else:
                if len(text) > MAX_RENDERED_SIZE:
                    raise TemplateRenderError(
                        field, source, OverflowError("the rendered value is too large")
                    )
                return json.loads(text)
    return render_template(source, context, field=field)


def _render_strings(value: Any, context: TemplateContext, field: str) -> Any:
    if isinstance(value, str):
        return render_template(value, context, field=field)
    if isinstance(value, Mapping):
        return {k: _render_strings(v, context, _join(field, k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_render_strings(v, context, f"{field}[{i}]") for i, v in enumerate(value)]
    return value


class _Removed:
    """Prefect's ``RemoveValue``: a placeholder without its value disappears from its parent."""


_REMOVED = _Removed()


def _placeholder_error(field: str, message: str) -> TemplateRenderError:
    return TemplateRenderError(field, "", ValueError(message))


def _hydrate(value: Any, context: TemplateContext, field: str) -> Any:
    if isinstance(value, Mapping):
        if _KIND in value:
            return _hydrate_placeholder(value, context, field)
        out: dict[str, Any] = {}
        for key, item in value.items():
            hydrated = _hydrate(item, context, _join(field, key))
            if hydrated is not _REMOVED:
                out[key] = hydrated
        return out
    if isinstance(value, list | tuple):
        items = (_hydrate(item, context, f"{field}[{i}]") for i, item in enumerate(value))
        return [item for item in items if item is not _REMOVED]
    if isinstance(value, str) and is_template(value):
        return _render_typed(value, context, field)
    return value


def _hydrate_placeholder(value: Mapping[str, Any], context: TemplateContext, field: str) -> Any:
    kind = value[_KIND]
    if kind == "jinja":
        if "template" not in value:
            raise _placeholder_error(field, "Missing 'template' key in __prefect object")
        template = value["template"]
        inner_field = _join(field, "template")
        if isinstance(template, Mapping):
            template = _hydrate(template, context, inner_field)
        if not isinstance(template, str):
            raise _placeholder_error(inner_field, "a jinja template must be a string")
        return render_template(template, context, field=inner_field)
    if kind == "json":
        if "value" not in value:
            return _REMOVED
        inner = value["value"]
        inner_field = _join(field, "value")
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
        return _hydrate(value["value"], context, _join(field, "value"))
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
        return is_template(value)
    if isinstance(value, Mapping):
        return any(_holds_template(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_template(item) for item in value)
    return False


def needs_rendering(action: actions_.Action) -> bool:
    """Whether :func:`render_parameters` would change anything (else the context is not needed)."""
    if action.type == RUN_DEPLOYMENT and "parameters" in action.parameters:
        return True  # typed placeholders are resolved even without a template string
    return any(_holds_template(v) for k, v in action.parameters.items() if k != "type")


def render_parameters(action: actions_.Action, context: TemplateContext) -> dict[str, Any]:
    """Returns the action's parameters with every template rendered.

    Strings without template markers and non-string values are returned untouched. For
    ``run-deployment``, ``parameters`` are hydrated as Prefect does: placeholders are resolved and a
    plain ``"{{ expr }}"`` keeps the expression's JSON type (an int stays an int).

    Args:
        action: The action whose parameters to render.
        context: The template variables, from ``build_context``.

    Raises:
        TemplateRenderError: The first template that fails, with its ``field`` and ``source``.
    """
    out: dict[str, Any] = {}
    for key, value in action.parameters.items():
        field = _join("", key)
        if key == "type":
            out[key] = value
        elif action.type == RUN_DEPLOYMENT and key == "parameters":
            hydrated = _hydrate(value, context, field)
            out[key] = {} if hydrated is _REMOVED else hydrated
        else:
            out[key] = _render_strings(value, context, field)
    return out
