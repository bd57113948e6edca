"""One request's CPU work, run on a worker thread: context, render, events, validation, rows.

Everything between an authenticated request and the writer: parsing the body (up to the body
limit), rendering the template within its budget, building and validating the events
(``rendering``) and encoding their event-log rows (the ``prepare`` the composition root gives,
as ``PublishEvents`` does). Also what ``TestWebhook`` runs, without publishing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from automations.actions.templates import webhooks as webhook_templates
from automations.domain import events, redaction, webhooks
from automations.webhooks import rendering, requests

MAX_RECORDED_RENDER = 4096
"""The most characters of a rendered template kept in a delivery record."""


@dataclasses.dataclass(slots=True)
class Processed:
    """A request turned into events, ready to publish.

    Attributes:
        events: The events, validated.
        rows: Their event-log rows (None without ``prepare``).
        rendered: What the template rendered.
        headers: The request's headers without ``Authorization``, secrets masked.
    """

    events: list[events.Event]
    rows: list[Any] | None
    rendered: str
    headers: dict[str, str]


class Failed(Exception):
    """The request cannot become events (answered 400).

    Attributes:
        message: Why.
        rendered: What the template rendered ("" when it failed to render).
        failed_event: Prefect's ``prefect-cloud.webhook.failed`` for this request.
        headers: The request's headers without ``Authorization``, secrets masked.
    """

    def __init__(
        self, message: str, rendered: str, failed_event: events.Event, headers: dict[str, str]
    ) -> None:
        super().__init__(message)
        self.message = message
        self.rendered = rendered
        self.failed_event = failed_event
        self.headers = headers


@functools.lru_cache(maxsize=4096)
def _secret_header(name: str) -> bool:
    return redaction.is_secret_key(name)


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers as recorded and shown: no ``Authorization``, secrets masked.

    A header whose name says it is secret (a token, a signature, a cookie...) is masked whole;
    in the others, secrets of URLs (``redaction.text``).
    """
    return {
        name: redaction.MASK if _secret_header(name) else redaction.text(value)
        for name, value in headers.items()
        if name != "authorization"
    }


def process(
    webhook: webhooks.Webhook,
    request: requests.Request,
    *,
    delivery_id: str | None,
    prepare: Callable[[events.Event], Any] | None = None,
    budget: webhook_templates.ShortBudget | None = None,
) -> Processed:
    """Renders a request into events (off the event loop, unless with a short ``budget``).

    Args:
        webhook: The webhook.
        request: The request (authenticated already).
        delivery_id: The provider's delivery id, if any (for deterministic event ids).
        prepare: Encodes an event's event-log row ahead of the writer.
        budget: The render's budget (the full one when None). When it runs out, the outcome,
            ``Failed`` or not, is to be thrown away (``budget.ran_out``).

    Raises:
        Failed: The template failed, or its result is not valid events.
    """
    visible = request.headers.without("authorization")
    ctx = requests.context(request, visible)
    headers = masked_headers(visible)
    rendered = ""
    try:
        rendered = webhook_templates.render(
            webhook.template, ctx, strict=webhook.strict, limits=budget
        )
        built = rendering.build_events(
            rendered,
            webhook=webhook,
            ctx=ctx,
            headers=headers,
            delivery_id=delivery_id,
            now=request.received,
        )
    except (webhook_templates.WebhookTemplateError, rendering.Invalid) as exc:
        failed = rendering.failed_event(
            webhook,
            method=request.method,
            headers=headers,
            body=ctx["body"],
            raw_body=ctx["raw_body"],
            rendered=rendered,
            error=exc.message,
            now=request.received,
        )
        raise Failed(exc.message, rendered, failed, headers) from None
    rows = None if prepare is None else [prepare(event) for event in built]
    return Processed(built, rows, rendered, headers)


def recorded_render(rendered: str) -> str:
    """A rendered template as kept in the delivery history (cut)."""
    return rendering.cut(rendered, MAX_RECORDED_RENDER)


def event_ids(built: Sequence[events.Event]) -> tuple[str, ...]:
    """The ids of the events of a request."""
    return tuple(event.id for event in built)
