"""The sandbox templates run in: Prefect's limits, and guards against huge values.

Templates run in one ``ImmutableSandboxedEnvironment`` as Prefect's do (``user_templates.py``):
undefined names render as "", unsafe attributes (``__class__``) render as "", collections cannot be
mutated, ``range()`` is capped at 100 items, a template holds at most 10 ``for`` loops nested at
most 2 deep, and nothing can be extended, included or imported. On top of Prefect's limits a
rendered template is capped at ``MAX_RENDERED_SIZE`` characters, and the obvious ways to build a
huge string in one expression (``'x' * 10**9``, ``'%999999999s'``, ``ljust``...) are refused.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable, Iterable
from typing import Any

import jinja2
from jinja2 import filters as jinja_filters
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from automations.actions import template_context

MAX_TEMPLATE_RANGE = 100
"""The most items ``range()`` may produce in a template (Prefect's ``MAX_TEMPLATE_RANGE``)."""


MAX_LOOP_COUNT = 10
"""The most ``for`` loops one template may contain (Prefect's ``MAX_LOOP_COUNT``)."""


MAX_NESTED_LOOP_DEPTH = 2
"""How deep ``for`` loops may nest (Prefect's ``MAX_NESTED_LOOP_DEPTH``)."""


MAX_RENDERED_SIZE = 1 << 20
"""The most characters one rendered template (or one value built inside it) may have."""


_FLOW_RUN_ID = re.compile(
    r"flow-run[/.]([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", re.IGNORECASE
)


_WIDE_PERCENT = re.compile(r"%[-#0 +]*(\*|\d{7,}|\d*\.(\*|\d{7,}))")


_WIDE_BRACE = re.compile(r"\{[^{}]*:[^{}]*(\d{7,}|\{)")


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


_MAX_POWER_BITS = 1 << 16


def refuse_size(size: int) -> None:
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
                    refuse_size(len(sequence) * times)
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
                refuse_size(args[0])
            elif name == "expandtabs":
                tabsize = args[0] if args and isinstance(args[0], int) else 8
                refuse_size(len(owner) * max(tabsize, 1))
            elif name == "replace" and len(args) >= 2:
                refuse_size(len(owner) + owner.count(str(args[0])) * len(str(args[1])))
            elif name == "join" and args:
                items = list(args[0])
                refuse_size(len(owner) * len(items) + sum(len(str(i)) for i in items))
                args = (items, *args[1:])
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Refuses ``str.format`` with huge widths, else sandboxes it as Jinja does."""
        wrapper = super().wrap_str_format(value)
        if wrapper is not None:
            _refuse_wide_format(value.__self__, _WIDE_BRACE)
        return wrapper


def json_default(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        return None
    return template_context.to_jsonable(value)


def _tojson(value: Any, indent: int | None = None) -> str:
    """Prints any context value as JSON (events, resources, firings, datetimes; undefined: null)."""
    return json.dumps(value, default=json_default, indent=indent)


def _flow_run_id(value: Any) -> str:
    """Extracts the id from ``.../flow-run/<uuid>`` (or ``prefect.flow-run.<uuid>``); "" if none."""
    match = _FLOW_RUN_ID.search(str(value))
    return match.group(1) if match else ""


def _center(value: str, width: int = 80) -> str:
    refuse_size(width)
    return jinja_filters.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    step = width if isinstance(width, int) else len(str(width))
    refuse_size(len(str(s)) + (str(s).count("\n") + 1) * step)
    return jinja_filters.do_indent(s, width, first, blank)


@jinja2.pass_eval_context
def _replace(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    refuse_size(len(text) + text.count(str(old)) * len(str(new)))
    return jinja_filters.do_replace(eval_ctx, s, old, new, count)


@jinja2.pass_eval_context
def _join_filter(
    eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    items = list(value)
    refuse_size(len(str(d)) * len(items))
    return jinja_filters.sync_do_join(eval_ctx, items, d, attribute)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _refuse_wide_format(str(value), _WIDE_PERCENT)
    return jinja_filters.do_format(value, *args, **kwargs)


ENV = _UserTemplateEnvironment()
