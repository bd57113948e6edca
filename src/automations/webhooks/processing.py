"""One request's CPU work, run on a worker thread: context, render, events, validation, rows.

Everything between an authenticated request and the writer: parsing the body (up to the body
limit), rendering the template within its budget, building and validating the events
(``rendering``) and encoding their event-log rows (the ``prepare`` the composition root gives,
as ``PublishEvents`` does). Also what ``TestWebhook`` runs, without publishing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from automations.actions.templates import webhooks as webhook_templates
from automations.domain import events, webhooks
from automations.webhooks import rendering, requests


@dataclasses.dataclass(slots=True)
class Processed:
    """A request turned into events, ready to publish.

    Attributes:
        events: The events, validated.
        rows: Their event-log rows (None without ``prepare``).
        rendered: What the template rendered.
    """

    events: list[events.Event]
    rows: list[Any] | None
    rendered: str


class Failed(Exception):
    """The request cannot become events (answered 400).

    Attributes:
        message: Why.
        rendered: What the template rendered ("" when it failed to render).
        failed_event: Prefect's ``prefect-cloud.webhook.failed`` for this request.
    """

    def __init__(self, message: str, rendered: str, failed_event: events.Event) -> None:
        super().__init__(message)
        self.message = message
        self.rendered = rendered
        self.failed_event = failed_event


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
    rendered = ""
    try:
        rendered = webhook_templates.render(
            webhook.template, ctx, strict=webhook.strict, limits=budget
        )
        built = rendering.build_events(
            rendered,
            webhook=webhook,
            ctx=ctx,
            headers=visible,
            delivery_id=delivery_id,
            now=request.received,
        )
    except (webhook_templates.WebhookTemplateError, rendering.Invalid) as exc:
        failed = rendering.failed_event(
            webhook,
            method=request.method,
            headers=requests.masked_headers(visible),
            body=ctx["body"],
            raw_body=ctx["raw_body"],
            rendered=rendered,
            error=exc.message,
            now=request.received,
        )
        raise Failed(exc.message, rendered, failed) from None
    rows = None if prepare is None else [prepare(event) for event in built]
    return Processed(built, rows, rendered)
