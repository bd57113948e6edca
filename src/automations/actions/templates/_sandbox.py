"""The sandbox templates run in: Prefect's limits, and guards against huge values.

Templates run in one ``ImmutableSandboxedEnvironment`` as Prefect's do (``user_templates.py``):
undefined names render as "", unsafe attributes (``__class__``) render as "", collections cannot be
mutated, ``range()`` is capped at 100 items, a template holds at most 10 ``for`` loops nested at
most 2 deep, and nothing can be extended, included or imported. On top of Prefect's limits a
rendered template is capped at ``MAX_RENDERED_SIZE`` characters, and every way a template can grow a
value (``*``, ``+``, ``~``, ``%``, ``str.format``, ``ljust``, ``join``, ``replace``...) refuses a
result larger than that.

And a render has a budget (:func:`budget`): ``MAX_RENDER_CPU_SECONDS`` of the rendering thread's CPU
time and ``MAX_RENDER_CHARACTERS`` characters built in all (so a loop cannot build many values just
under the size cap). Every loop iteration, attribute or item access, call, operator and
concatenation counts; a render over budget fails with :class:`RenderBudgetExceeded`.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jinja2
from jinja2 import compiler, nodes
from jinja2 import filters as jinja_filters
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from automations.actions import template_context
from automations.actions.templates import _urls

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


MAX_RENDER_CPU_SECONDS = 1.0
"""The CPU time one render (all of one action's templates) may take."""


MAX_RENDER_CHARACTERS = 1 << 24
"""The characters one render may build in all, intermediate values included."""


_CHECK_EVERY = 64
"""Budget ticks between two looks at the thread's CPU clock (a look costs a system call)."""


class RenderBudgetExceeded(RuntimeError):
    """A render used more CPU time or built more characters than its budget allows."""


class Budget:
    """What one render may still spend (see the module docstring).

    Args:
        cpu_seconds: CPU time of the rendering thread.
        characters: Characters built in all.
    """

    __slots__ = ("_characters", "_cpu_seconds", "_deadline", "_left", "_ticks")

    def __init__(
        self,
        cpu_seconds: float = MAX_RENDER_CPU_SECONDS,
        characters: int = MAX_RENDER_CHARACTERS,
    ) -> None:
        self._cpu_seconds = cpu_seconds
        self._deadline = time.thread_time() + cpu_seconds
        self._characters = characters
        self._left = characters
        self._ticks = 0

    @property
    def characters_left(self) -> int:
        """The characters renders may still build."""
        return self._left

    def spend(self, characters: int) -> None:
        """Counts ``characters`` built; raises once the budget is spent."""
        self._left -= characters
        if self._left < 0:
            raise RenderBudgetExceeded(
                f"the template built more than {self._characters} characters in all"
            )
        self.tick()

    def tick(self) -> None:
        """Counts a step of work; raises once the CPU time is spent."""
        self._ticks += 1
        if self._ticks % _CHECK_EVERY == 0 and time.thread_time() > self._deadline:
            raise RenderBudgetExceeded(
                f"the template took more than {self._cpu_seconds:g} s of CPU time to render"
            )


class _Local(threading.local):
    budget: Budget | None = None  # a class default: no lookup with a fallback per access


_local = _Local()


def _current() -> Budget | None:
    return _local.budget


def enter(limits: Budget) -> Budget | None:
    """Renders on this thread spend ``limits`` from now, unless a budget is in force already.

    :func:`budget` without a generator, for a path that renders often (a webhook request):
    returns the budget that was in force (to give :func:`leave`), None when ``limits`` took over.
    """
    outer = _local.budget
    if outer is None:
        _local.budget = limits
    return outer


def leave(outer: Budget | None) -> None:
    """Ends what :func:`enter` began (``outer``: what it returned)."""
    if outer is None:
        _local.budget = None


@contextlib.contextmanager
def budget(limits: Budget | None = None) -> Iterator[Budget]:
    """Renders in the block spend ``limits`` (a fresh default budget when None).

    A block inside another one keeps the outer budget: one action's templates share one.
    """
    outer = _local.budget
    if outer is not None:
        yield outer
        return
    _local.budget = limits or Budget()
    try:
        yield _local.budget
    finally:
        _local.budget = None


def _tick() -> None:
    current = _local.budget
    if current is not None:
        current.tick()


def _spend(value: object) -> None:
    """Counts a value a template built (strings, lists and tuples by their length)."""
    if isinstance(value, str | list | tuple):
        current = _current()
        if current is not None:
            current.spend(len(value))


def refuse_size(size: int) -> None:
    if size > MAX_RENDERED_SIZE:
        raise OverflowError(
            f"the result would be larger than MAX_RENDERED_SIZE ({MAX_RENDERED_SIZE} characters)"
        )


def _iterate(iterable: Iterable[Any]) -> Iterator[Any]:
    """What a ``for`` loop iterates over: the same items, each one a step of the budget."""
    current = _current()
    if current is None:
        yield from iterable
        return
    tick = current.tick
    for item in iterable:
        tick()
        yield item


class _GuardedCodeGenerator(compiler.CodeGenerator):
    """Jinja's code generator, with ``~`` (concatenation) through ``guarded_concat``."""

    def visit_Concat(self, node: nodes.Concat, frame: compiler.Frame) -> None:
        self.write("environment.guarded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


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

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _GuardedCodeGenerator

    def __init__(self) -> None:
        super().__init__(
            undefined=jinja2.ChainableUndefined,
            autoescape=False,
            enable_async=False,
            loader=_RefusingLoader(),
        )
        self.globals["range"] = _capped_range
        self.iterate = _iterate
        self.filters.update(
            {
                "tojson": _tojson,
                "flow_run_id": _flow_run_id,
                "ui_url": _urls.ui_url,
                "ui_resource_events_url": _urls.ui_resource_events_url,
                "center": _center,
                "indent": _indent,
                "replace": _replace,
                "join": _join_filter,
                "format": _format,
            }
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuses ``*``, ``**``, ``%`` and ``+`` whose result would be huge, then applies them."""
        if operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                refuse_size(len(left) + len(right))
        elif operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                    refuse_size(len(sequence) * times)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
                if abs(left).bit_length() * right > _MAX_POWER_BITS:
                    raise OverflowError("the power is too large")
        elif isinstance(left, str):
            _refuse_wide_format(left, _WIDE_PERCENT)
        result = super().call_binop(context, operator, left, right)
        _spend(result)
        return result

    def guarded_concat(self, parts: Iterable[Any]) -> str:
        """``a ~ b ~ c``: refused when the result would be huge, and counted in the budget."""
        texts = [str(part) for part in parts]
        size = sum(map(len, texts))
        refuse_size(size)
        result = "".join(texts)
        _spend(result)
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Every attribute access is a step of the budget."""
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """Every item access is a step of the budget."""
        _tick()
        return super().getitem(obj, argument)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Refuses string methods whose result would be huge, then calls ``obj``."""
        result = self._call(context, obj, *args, **kwargs)
        _spend(result)
        return result

    def _call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        _tick()
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
    return _spent(jinja_filters.do_center(value, width))


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    step = width if isinstance(width, int) else len(str(width))
    refuse_size(len(str(s)) + (str(s).count("\n") + 1) * step)
    return _spent(jinja_filters.do_indent(s, width, first, blank))


@jinja2.pass_eval_context
def _replace(eval_ctx: EvalContext, s: str, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    refuse_size(len(text) + text.count(str(old)) * len(str(new)))
    return _spent(str(jinja_filters.do_replace(eval_ctx, s, old, new, count)))


@jinja2.pass_eval_context
def _join_filter(
    eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    items = list(value)
    refuse_size(len(str(d)) * len(items) + sum(len(str(item)) for item in items))
    return _spent(jinja_filters.sync_do_join(eval_ctx, items, d, attribute))


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _refuse_wide_format(str(value), _WIDE_PERCENT)
    return _spent(jinja_filters.do_format(value, *args, **kwargs))


def _spent(text: str) -> str:
    refuse_size(len(text))
    _spend(text)
    return text


ENV = _UserTemplateEnvironment()
