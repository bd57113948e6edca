"""Template syntax: what is a template, parsing, the structural limits, and the compile cache."""

from __future__ import annotations

import functools
import re

import jinja2
from jinja2 import meta as jinja_meta
from jinja2 import nodes
from jinja2.environment import TemplateExpression

from automations.actions.templates import _sandbox

COMPILED_CACHE_SIZE = 4096
"""How many compiled templates are kept, keyed by their source."""


RUN_DEPLOYMENT = "run-deployment"
"""The action type whose ``parameters`` use Prefect's typed placeholders."""


_MARKERS = ("{{", "{%", "{#")


KIND = "__prefect_kind"


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def is_template(value: str) -> bool:
    """Whether a parameter string is a template (contains ``{{``, ``{%`` or ``{#``)."""
    return any(marker in value for marker in _MARKERS)


class InvalidTemplate(Exception):
    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno
        self.message = message


class Compiled:
    """A checked template, and its single expression when the template is only ``{{ expr }}``."""

    __slots__ = ("expression", "template")

    def __init__(self, template: jinja2.Template, expression: TemplateExpression | None) -> None:
        self.template = template
        self.expression = expression


MAX_NESTING = 64
"""How deep expressions and statements may nest in a template (its syntax tree's depth)."""


def _check_structure(root: nodes.Template) -> None:
    """Checks the limits a template must keep, and routes its loops through the budget.

    One pass over the syntax tree, without recursion (a template may be nested deeply enough to
    exhaust Python's stack): no ``extends``/``include``/``import``, at most ``MAX_LOOP_COUNT``
    loops nested at most ``MAX_NESTED_LOOP_DEPTH`` deep, at most ``MAX_NESTING`` levels in all.
    Each loop's iterable is wrapped in ``environment.iterate``, so every iteration is a step of
    the render's budget (``_sandbox.budget``).
    """
    loops: list[nodes.For] = []
    stack: list[tuple[nodes.Node, int, int]] = [(root, 0, 0)]
    while stack:
        node, depth, loop_depth = stack.pop()
        if depth > MAX_NESTING:
            raise InvalidTemplate(
                getattr(node, "lineno", 1) or 1,
                f"nests expressions more than {MAX_NESTING} deep",
            )
        if isinstance(node, nodes.Extends | nodes.Include | nodes.Import | nodes.FromImport):
            raise InvalidTemplate(
                node.lineno, "templates cannot extend, include or import other templates"
            )
        if isinstance(node, nodes.For):
            loops.append(node)
            loop_depth += 1
            if loop_depth > _sandbox.MAX_NESTED_LOOP_DEPTH:
                raise InvalidTemplate(
                    node.lineno,
                    f"nests for loops {loop_depth} deep; loops may nest at most "
                    f"{_sandbox.MAX_NESTED_LOOP_DEPTH} deep",
                )
            node.iter = nodes.Call(
                nodes.EnvironmentAttribute("iterate"), [node.iter], [], None, None
            ).set_lineno(node.lineno)
        stack.extend((child, depth + 1, loop_depth) for child in node.iter_child_nodes())
    if len(loops) > _sandbox.MAX_LOOP_COUNT:
        loops.sort(key=lambda loop: loop.lineno)
        raise InvalidTemplate(
            loops[_sandbox.MAX_LOOP_COUNT].lineno,
            f"contains {len(loops)} for loops; a template may contain at most "
            f"{_sandbox.MAX_LOOP_COUNT}",
        )


def _parse(source: str) -> nodes.Template:
    try:
        return _sandbox.ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidTemplate(exc.lineno, exc.message or "invalid syntax") from None
    except RecursionError:
        raise InvalidTemplate(1, f"nests expressions more than {MAX_NESTING} deep") from None


def _single_expression(source: str) -> TemplateExpression | None:
    body = _parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        return None
    expr = body[0].nodes[0]
    if isinstance(expr, nodes.TemplateData):
        return None
    assign = nodes.Assign(nodes.Name("result", "store"), expr, lineno=expr.lineno)
    return TemplateExpression(
        _sandbox.ENV.from_string(nodes.Template([assign], lineno=1)), undefined_to_none=False
    )


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def compile_template(source: str) -> Compiled:
    root = _parse(source)
    _check_structure(root)
    try:
        template = _sandbox.ENV.from_string(root)
        expression = _single_expression(source)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter
        raise InvalidTemplate(exc.lineno, exc.message or "invalid syntax") from None
    except (RecursionError, SyntaxError, MemoryError):  # Python's own compiler gave up
        raise InvalidTemplate(1, f"nests expressions more than {MAX_NESTING} deep") from None
    return Compiled(template, expression)


def join_field(prefix: str, key: object) -> str:
    name = str(key)
    if _IDENTIFIER.match(name):
        return f"{prefix}.{name}" if prefix else name
    return f"{prefix}[{name!r}]"


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def names_in(source: str) -> frozenset[str]:
    try:
        return frozenset(jinja_meta.find_undeclared_variables(_sandbox.ENV.parse(source)))
    except (jinja2.TemplateSyntaxError, RecursionError):
        return frozenset()
