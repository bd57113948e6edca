"""Webhook templates that only substitute values, rendered without Jinja's runtime.

Most webhook templates are a JSON text with ``{{ ... }}`` holes filled from the request:
``{{ body.repository.full_name }}``, ``{{ headers['x-github-event'] }}``,
``{{ headers.get('user-agent', '?') }}``, ``{{ body.n | tojson }}``. Jinja renders them through a
new context, a generator and a sandboxed attribute lookup and call per hole: ~9 microseconds
per request in the webhook front, a tenth of its work there. A template whose syntax tree holds
only text and such holes is compiled here, once, into a list of steps evaluated with plain dict
lookups.

It never decides anything Jinja would decide differently. A hole whose value is missing (a key
not in the body, a name not in the context) or not a plain dict or list where one is read, any
exception, or an output growing over ``MAX_CHARACTERS`` makes :meth:`Substitution.render` answer
None, and the caller renders with Jinja, which gives the exact output or error (Prefect's empty
string, strict mode's error, the budget's limits). A dict method's name read as a key
(``body.items``) is Jinja's to resolve: such a template is not compiled here at all. What is
rendered here is what Jinja renders: ``str`` of each value (as the sandbox's output does), the
``tojson`` filter itself, and the same ``get`` of the same mapping.

The work is bounded without a budget: there are no loops, and a render stops at the first hole
that takes the output over ``MAX_CHARACTERS`` (Jinja then computes that hole again and fails
with its own error). A budget's characters are not spent here; a caller whose budget allows
fewer than ``MAX_CHARACTERS`` must render with Jinja.

What is a hole here:

* a context name (``body``, ``headers``...);
* then any chain of ``.key`` or ``['key']`` on dicts (and the request's headers,
  case-insensitively), and ``[index]``, ``[-index]`` or ``.index`` on lists;
* optionally ``.get(key)`` or ``.get(key, default)`` with constant arguments on a dict or the
  headers, last;
* optionally ``| tojson``, last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from jinja2 import nodes

MAX_CHARACTERS: Final = 65536
"""The longest output rendered here: a render stops as soon as its output is longer (Jinja then
renders it, within its budget and size limits)."""


class _Miss(Exception):
    """This hole is Jinja's to render (a missing value, an unusual type)."""


_Value = Callable[[Mapping[str, Any]], Any]
"""Evaluates a hole's value from the template context (raises ``_Miss``)."""
Step = str | _Value


def _name(name: str) -> _Value:
    def value(ctx: Mapping[str, Any]) -> Any:
        try:
            return ctx[name]
        except KeyError:
            raise _Miss from None

    return value


def _key(
    inner: _Value, key: str, mapping_types: tuple[type, ...], methods: frozenset[str]
) -> _Value:
    """``inner.key`` or ``inner['key']`` on a mapping; a method's name is Jinja's to resolve."""
    if key in methods:
        raise ValueError("a method name")  # compiled as not a substitution
    return _item(inner, key, mapping_types)


def _item(inner: _Value, key: str | int, types: tuple[type, ...]) -> _Value:
    """``inner[key]`` when ``inner`` is of one of ``types`` and holds ``key``."""

    def value(ctx: Mapping[str, Any]) -> Any:
        obj = inner(ctx)
        if type(obj) not in types:
            raise _Miss
        try:
            return obj[key]
        except LookupError:
            raise _Miss from None

    return value


def _get(inner: _Value, args: tuple[Any, ...], mapping_types: tuple[type, ...]) -> _Value:
    def value(ctx: Mapping[str, Any]) -> Any:
        obj = inner(ctx)
        if type(obj) not in mapping_types:
            raise _Miss
        return obj.get(*args)

    return value


def _filtered(inner: _Value, fn: Callable[[Any], str]) -> _Value:
    def value(ctx: Mapping[str, Any]) -> str:
        return fn(inner(ctx))

    return value


class Substitution:
    """A template compiled to text and holes (see the module docstring)."""

    __slots__ = ("_steps",)

    def __init__(self, steps: list[Step]) -> None:
        self._steps = tuple(steps)

    def render(self, ctx: Mapping[str, Any]) -> str | None:
        """The rendered text, or None when Jinja must render it."""
        parts: list[str] = []
        size = 0
        try:
            for step in self._steps:
                if isinstance(step, str):
                    text = step
                else:
                    value = step(ctx)
                    text = value if type(value) is str else str(value)
                size += len(text)
                if size > MAX_CHARACTERS:  # before the next hole: the work stays bounded
                    return None
                parts.append(text)
        except Exception:  # _Miss, or anything Jinja is to report in its own words
            return None
        return "".join(parts)


def compile_substitution(
    root: nodes.Template,
    *,
    mapping_types: tuple[type, ...],
    tojson: Callable[[Any], str],
) -> Substitution | None:
    """The template as a :class:`Substitution`, or None when it is more than text and holes.

    Args:
        root: The parsed template (``Environment.parse``).
        mapping_types: The mappings whose keys ``.key`` reads (``dict`` and the headers' type);
            their attributes' names are left to Jinja.
        tojson: The environment's ``tojson`` filter.
    """
    methods = frozenset(name for kind in mapping_types for name in dir(kind))
    steps: list[Step] = []
    for output in root.body:
        if type(output) is not nodes.Output:
            return None
        for node in output.nodes:
            if type(node) is nodes.TemplateData:
                steps.append(node.data)
                continue
            try:
                steps.append(_hole(node, mapping_types, methods, tojson))
            except ValueError:
                return None
    return Substitution(steps)


def _hole(
    node: nodes.Node,
    mapping_types: tuple[type, ...],
    methods: frozenset[str],
    tojson: Callable[[Any], str],
) -> _Value:
    """Compiles one ``{{ ... }}``; raises ValueError for anything but a hole of this module."""
    if type(node) is nodes.Filter:
        if node.name != "tojson" or node.args or node.kwargs or node.dyn_args or node.dyn_kwargs:
            raise ValueError(node.name)
        assert node.node is not None  # a filter block has none; an output's filter has one
        return _filtered(_hole_value(node.node, mapping_types, methods), tojson)
    return _hole_value(node, mapping_types, methods)


def _hole_value(
    node: nodes.Node, mapping_types: tuple[type, ...], methods: frozenset[str]
) -> _Value:
    if type(node) is nodes.Call:
        callee = node.node
        if (
            type(callee) is not nodes.Getattr
            or callee.attr != "get"
            or node.kwargs
            or node.dyn_args
            or node.dyn_kwargs
            or not 1 <= len(node.args) <= 2
        ):
            raise ValueError("a call")
        args = tuple(_constant(arg) for arg in node.args)
        return _get(_path(callee.node, mapping_types, methods), args, mapping_types)
    return _path(node, mapping_types, methods)


def _constant(node: nodes.Node) -> Any:
    """A constant (``[key]``, ``[-index]``, ``.get``'s arguments); ValueError for any other node."""
    if type(node) is nodes.Const:
        return node.value
    if type(node) is nodes.Neg and type(node.node) is nodes.Const and type(node.node.value) is int:
        return -node.node.value
    raise ValueError(type(node).__name__)


def _path(node: nodes.Node, mapping_types: tuple[type, ...], methods: frozenset[str]) -> _Value:
    if type(node) is nodes.Name:
        return _name(node.name)
    if type(node) is nodes.Getattr:
        return _key(_path(node.node, mapping_types, methods), node.attr, mapping_types, methods)
    if type(node) is nodes.Getitem:
        key = _constant(node.arg)
        inner = _path(node.node, mapping_types, methods)
        if type(key) is str:
            return _key(inner, key, mapping_types, methods)
        if type(key) is int:
            return _item(inner, key, (list,))
    raise ValueError(type(node).__name__)
