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
render may use its whole budget (``MAX_RENDER_CPU_SECONDS``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jinja2

from automations.actions.templates import _compiling, _humanize, _sandbox, cloudevents
from automations.domain import errors


def _environment(undefined: type[jinja2.Undefined]) -> jinja2.Environment:
    env = _sandbox.ENV.overlay(undefined=undefined)
    # an overlay shares its parent's filter and global dicts: these must not leak into the
    # action templates' environment
    env.filters = dict(_sandbox.ENV.filters)
    env.globals = dict(_sandbox.ENV.globals)
    env.filters.update(_humanize.FILTERS)
    env.filters["from_cloud_event"] = cloudevents.from_cloud_event
    return env


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


def render(
    source: str,
    context: Mapping[str, Any],
    *,
    strict: bool = False,
    limits: _sandbox.Budget | None = None,
) -> str:
    """Renders a webhook template within a budget of its own.

    Args:
        source: The template.
        context: The request's variables.
        strict: Use the strict environment (a missing value is an error).
        limits: The budget (the default one when None).

    Raises:
        WebhookTemplateError: It is invalid, fails, renders more than ``MAX_RENDERED_SIZE``
            characters or exceeds its budget.
    """
    if not _compiling.is_template(source):
        return source
    try:
        template = _compile(source, strict)
    except _compiling.InvalidTemplate as exc:
        raise WebhookTemplateError(f"the template is invalid: {exc}") from None
    with _sandbox.budget(limits):
        try:
            size = 0
            parts: list[str] = []
            for chunk in template.generate(context):
                size += len(chunk)
                _sandbox.refuse_size(size)
                parts.append(chunk)
            return "".join(parts)
        except jinja2.UndefinedError as exc:
            raise WebhookTemplateError(f"the template failed to render: {exc.message}") from None
        except cloudevents.NotACloudEvent as exc:
            raise WebhookTemplateError(f"from_cloud_event: {exc}") from None
        except Exception as exc:
            raise WebhookTemplateError(f"the template failed to render: {exc!r}") from None
