"""Webhook templates: the action templates' sandbox plus the filters Prefect's webhooks offer.

A webhook's template renders the request (``method``, ``headers``, ``body``, ``query``, ``path``,
``raw_body``) into the JSON of an event, or of a JSON array of events. It runs in the same sandbox
as action templates (``_sandbox``: Prefect's ``ImmutableSandboxedEnvironment`` rules, its range
and loop limits, the size guards and the per-render budget), with these filters besides the
sandbox's own (``tojson``, ``flow_run_id``...):

* ``from_cloud_event(headers)`` (``cloudevents``);
* the humanize filters Prefect documents (``_humanize``: ``humanize_naturaltime``...).

Two environments share those rules: Prefect's, where a missing value renders as "" (its
``ChainableUndefined``: ``body.a.b`` of a body without ``a`` is ""), and a strict one, chosen per
webhook, where using a missing value is an error (so the request is answered 400 instead of
producing ``product.models.``). In the strict environment ``x|default(...)``, ``x is defined``
and ``headers.get(...)`` still work.

A template without ``{{``, ``{%`` or ``{#`` is returned verbatim. Render off the event loop: a
render may use its whole budget (``MAX_RENDER_CPU_SECONDS``); or on it with a
:class:`ShortBudget`, which says when it ran out so that the render can be done again elsewhere.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import jinja2
from jinja2 import runtime as jinja_runtime
from jinja2.runtime import Context

from automations.actions.templates import (
    _compiling,
    _humanize,
    _sandbox,
    _substitution,
    cloudevents,
)
from automations.domain import errors


class Headers(dict[str, str]):
    """Request headers, case-insensitive: keys are stored in lower case and looked up so.

    A plain ``dict`` underneath, so that templates can ``.get``, iterate and ``tojson`` it, and
    the sandbox refuses to modify it.
    """

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for key, value in items:
            name = key.lower()
            existing = dict.get(self, name)
            dict.__setitem__(self, name, value if existing is None else f"{existing}, {value}")

    @classmethod
    def from_asgi(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """The headers of an ASGI scope (names lower-case already, bytes in Latin-1)."""
        pairs = raw if isinstance(raw, list | tuple) else list(raw)
        headers = cls()
        dict.update(
            headers, {key.decode("latin-1"): value.decode("latin-1") for key, value in pairs}
        )
        if len(headers) != len(pairs) or not "".join(headers).islower():
            # repeated names are joined, names lowered (or none has a letter: the same)
            return cls((key.decode("latin-1"), value.decode("latin-1")) for key, value in pairs)
        return headers

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower() if isinstance(key, str) else key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        """The header's value (any case of its name), or ``default``."""
        return dict.get(self, key.lower() if isinstance(key, str) else key, default)

    def without(self, *names: str) -> Headers:
        """A copy without the named headers."""
        drop = [name.lower() for name in names]
        for name in drop:
            if dict.__contains__(self, name):
                return Headers((k, v) for k, v in self.items() if k not in drop)
        return self  # nothing to drop: no copy (a template cannot change it)


class _WebhookEnvironment(_sandbox._UserTemplateEnvironment):
    """The action templates' sandbox, with the webhook filters and faster lookups on dicts.

    ``body.key`` on a plain dict (a JSON body) is, for Jinja, an attribute lookup that fails
    with an exception before the item lookup succeeds: a few microseconds per access, a good
    share of a webhook's render. Here a key of a plain ``dict`` (or of the headers) that is not
    one of its methods is read as an item directly, which is what Jinja would return; any other
    object goes through the sandbox's lookup unchanged. Likewise ``headers.get(...)`` (and the
    other read-only lookups of ``_LOOKUPS``) on those mappings are taken and called directly,
    without the sandbox's checks of every attribute and call (which let them through), and
    ``tojson`` reuses one encoder: each still counts in the budget as it would. (A template of
    only text and holes usually does not get here: ``_substitution`` renders it, see
    :func:`render`.)
    """

    def __init__(self, undefined: type[jinja2.Undefined]) -> None:
        super().__init__()
        self.undefined = undefined
        self.filters.update(_humanize.FILTERS)
        self.filters["from_cloud_event"] = cloudevents.from_cloud_event
        self.filters["tojson"] = _tojson

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``obj.attribute``: an item of a plain dict at once, else the sandbox's lookup."""
        names = _ATTRIBUTES.get(type(obj))
        if names is not None:
            if attribute not in names:
                spent = _sandbox._local.budget
                if spent is not None:
                    spent.tick()
                try:
                    return obj[attribute]
                except KeyError:
                    return self.undefined(obj=obj, name=attribute)
            if attribute in _LOOKUPS:
                _sandbox._tick()
                return getattr(obj, attribute)
        return super().getattr(obj, attribute)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Calls ``obj``: a read-only lookup of a plain dict or the headers at once."""
        if type(getattr(obj, "__self__", None)) in _ATTRIBUTES and (
            getattr(obj, "__name__", None) in _LOOKUPS
        ):
            _sandbox._tick()
            result = obj(*args, **kwargs)
            _sandbox._spend(result)
            return result
        return super().call(context, obj, *args, **kwargs)


_ATTRIBUTES: dict[type, frozenset[str]] = {
    dict: frozenset(dir(dict)),
    Headers: frozenset(dir(Headers)),
}
"""The attributes (methods) of the mappings templates read keys of as ``a.b``."""
_LOOKUPS = frozenset({"get", "items", "keys", "values"})
"""The read-only methods of those mappings taken and called without the sandbox's checks."""
_ENCODER = json.JSONEncoder(default=_sandbox.json_default)
"""``tojson``'s encoder without indent: ``json.dumps`` makes a new one each call."""


def _tojson(value: Any, indent: int | None = None) -> str:
    """The sandbox's ``tojson`` (any context value as JSON, undefined as null), faster.

    What ``json.dumps`` prints, with a scalar printed at once: an ``int`` as its ``repr``, a
    finite ``float`` as its ``repr``, ``true``, ``false``, ``null``.
    """
    if indent is None:
        kind = type(value)
        if kind is int:
            return int.__repr__(value)
        if kind is float and math.isfinite(value):
            return float.__repr__(value)
        if kind is bool:
            return "true" if value else "false"
        if value is None:
            return "null"
        return _ENCODER.encode(value)
    return json.dumps(value, default=_sandbox.json_default, indent=indent)


def _environment(undefined: type[jinja2.Undefined]) -> jinja2.Environment:
    return _WebhookEnvironment(undefined)


PREFECT_ENV = _environment(jinja2.ChainableUndefined)
"""Prefect's rules: a missing value renders as ""."""
STRICT_ENV = _environment(jinja2.StrictUndefined)
"""Strict mode: using a missing value is an error."""


class WebhookTemplateError(Exception):
    """A webhook's template failed to compile or render.

    Attributes:
        message: What went wrong, for the 400's reason and the delivery history.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@functools.lru_cache(maxsize=_compiling.COMPILED_CACHE_SIZE)
def _compile(source: str, strict: bool) -> jinja2.Template:
    env = STRICT_ENV if strict else PREFECT_ENV
    try:
        root = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise _compiling.InvalidTemplate(exc.lineno, exc.message or "invalid syntax") from None
    except RecursionError:
        raise _compiling.InvalidTemplate(
            1, f"nests expressions more than {_compiling.MAX_NESTING} deep"
        ) from None
    _compiling._check_structure(root)
    try:
        return env.from_string(root)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter
        raise _compiling.InvalidTemplate(exc.lineno, exc.message or "invalid syntax") from None
    except (RecursionError, SyntaxError, MemoryError):
        raise _compiling.InvalidTemplate(
            1, f"nests expressions more than {_compiling.MAX_NESTING} deep"
        ) from None


@functools.lru_cache(maxsize=_compiling.COMPILED_CACHE_SIZE)
def _compiled(source: str, strict: bool) -> jinja2.Template | None:
    """The compiled template, or None for a text without template markers (used verbatim)."""
    return _compile(source, strict) if _compiling.is_template(source) else None


@functools.lru_cache(maxsize=_compiling.COMPILED_CACHE_SIZE)
def _substitution_of(source: str) -> _substitution.Substitution | None:
    """The template as text and holes, rendered without Jinja's runtime (``_substitution``).

    Only for a source :func:`_compiled` accepted (it is parsed again here, once). Parsed by
    Prefect's environment for both: the strict one has the same syntax (it differs only in how a
    missing value renders, which is always left to Jinja).
    """
    return _substitution.compile_substitution(
        PREFECT_ENV.parse(source), mapping_types=(dict, Headers), tojson=_tojson
    )


def validate_template(source: str, *, field: str = "template") -> None:
    """Checks a webhook template's syntax, filters and loop limits.

    Raises:
        errors.InvalidArgument: ``'template' is not a valid template: line <n>: <problem>``.
    """
    if not _compiling.is_template(source):
        return
    try:
        _compile(source, False)
    except _compiling.InvalidTemplate as exc:
        raise errors.InvalidArgument(
            field, f"{field!r} is not a valid template: {exc}", reason="INVALID_TEMPLATE"
        ) from None


class _Budget(_sandbox.Budget):
    """The render budget, starting its CPU clock at its first look rather than when made.

    Reading the thread's CPU clock is a system call (several microseconds here, as much as a
    small render): a render that never makes ``_CHECK_EVERY`` steps never reads it. The CPU time
    counted starts at the first look, so a render may run ``_CHECK_EVERY`` steps beyond its
    budget, microseconds.
    """

    __slots__ = ()

    def __init__(
        self,
        cpu_seconds: float = _sandbox.MAX_RENDER_CPU_SECONDS,
        characters: int = _sandbox.MAX_RENDER_CHARACTERS,
    ) -> None:
        self._cpu_seconds = cpu_seconds
        self._deadline = math.inf
        self._characters = characters
        self._left = characters
        self._ticks = 0

    def tick(self) -> None:
        """Counts a step of work; raises once the CPU time is spent."""
        self._ticks += 1
        if self._ticks % _sandbox._CHECK_EVERY == 0:
            now = time.thread_time()
            if self._deadline == math.inf:
                self._deadline = now + self._cpu_seconds
            elif now > self._deadline:
                raise _sandbox.RenderBudgetExceeded(
                    f"the template took more than {self._cpu_seconds:g} s of CPU time to render"
                )


class ShortBudget(_Budget):
    """A small budget, for a render that must not hold its thread long (the event loop).

    It fails a render as any budget does once its CPU time or its characters are spent, and
    says so afterwards (:attr:`ran_out`), so that the caller can throw the outcome away and
    render again with the full budget elsewhere. As with the full budget, a render that makes
    fewer than ``_CHECK_EVERY`` steps never reads the CPU clock.

    Args:
        cpu_seconds: CPU time of the rendering thread, counted from the first look.
        characters: Characters built in all.
    """

    __slots__ = ()

    def __init__(self, cpu_seconds: float, characters: int) -> None:
        super().__init__(cpu_seconds, characters)

    @property
    def ran_out(self) -> bool:
        """Whether this budget is spent (a render that used it is to be thrown away)."""
        if self._left < 0:
            return True
        return self._deadline != math.inf and time.thread_time() > self._deadline


def render(
    source: str,
    context: Mapping[str, Any],
    *,
    strict: bool = False,
    limits: _sandbox.Budget | None = None,
) -> str:
    """Renders a webhook template within a budget of its own.

    A template of text and holes (``_substitution``) is rendered without Jinja's runtime when
    the budget allows ``_substitution.MAX_CHARACTERS`` characters (every caller's does); it
    spends nothing of the budget (its work is bounded otherwise), and leaves to Jinja anything
    Jinja would render differently.

    Args:
        source: The template.
        context: The request's variables.
        strict: Use the strict environment (a missing value is an error).
        limits: The budget (a fresh one when None).

    Raises:
        WebhookTemplateError: It is invalid, fails, renders more than ``MAX_RENDERED_SIZE``
            characters or exceeds its budget.
    """
    try:
        template = _compiled(source, strict)
    except _compiling.InvalidTemplate as exc:
        raise WebhookTemplateError(f"the template is invalid: {exc}") from None
    if template is None:
        return source
    substitution = _substitution_of(source)
    if substitution is not None and (
        limits is None or limits.characters_left >= _substitution.MAX_CHARACTERS
    ):
        rendered = substitution.render(context)
        if rendered is not None:
            return rendered
    # the globals merged here once, not by Jinja per render (it walks a ChainMap each time)
    variables = {**_GLOBALS, **context}
    outer = _sandbox.enter(limits or _Budget())
    try:
        size = 0
        parts: list[str] = []
        # Jinja's own new_context also walks the template's globals (a ChainMap) for the
        # names a template it imports may see: nothing is imported in the sandbox
        context_ = jinja_runtime.new_context(
            template.environment, template.name, template.blocks, variables, True
        )
        for chunk in template.root_render_func(context_):
            size += len(chunk)
            if size > _sandbox.MAX_RENDERED_SIZE:
                _sandbox.refuse_size(size)
            parts.append(chunk)
        return "".join(parts)
    except jinja2.UndefinedError as exc:
        raise WebhookTemplateError(f"the template failed to render: {exc.message}") from None
    except cloudevents.NotACloudEvent as exc:
        raise WebhookTemplateError(f"from_cloud_event: {exc}") from None
    except Exception as exc:
        raise WebhookTemplateError(f"the template failed to render: {exc!r}") from None
    finally:
        _sandbox.leave(outer)


_GLOBALS = dict(PREFECT_ENV.globals)
"""The globals every template sees (``range``, ``dict``, ``namespace``...; both environments')."""
