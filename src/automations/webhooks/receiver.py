"""What a webhook request gets: the status codes, in the order they are decided.

1. An unknown or disabled webhook: **404** (the same answer, so a disabled hook's existence does
   not leak).
2. Over its rate limit: **429** with ``Retry-After``.
3. A CloudEvents webhook-validation request (``OPTIONS`` with ``WebHook-Request-Origin``, as
   Azure Event Grid sends for the CloudEvents schema): **200** with ``WebHook-Allowed-Origin``;
   any other ``OPTIONS`` is 405.
4. Authentication (``signatures``): **401** without the required credentials, **403** with wrong
   ones or a signed timestamp out of tolerance.
5. Azure Event Grid's subscription validation (``aeg-event-type: SubscriptionValidation``, a
   ``Microsoft.EventGrid.SubscriptionValidationEvent``): **200** ``{"validationResponse":
   "<validationCode>"}``, no event.
6. The template and the events (``processing``, on the event loop for a small request, else on
   a worker thread: ``inline``): **400** ``{"error": ...}``
   when it fails to render or its result is not valid events; a
   ``prefect-cloud.webhook.failed`` event is published then, so an automation can alert on a
   broken integration.
7. Publishing through the single writer: **204** only once the events are committed (a
   duplicate, e.g. a provider's retry, too); **503** with ``Retry-After`` while the engine
   applies backpressure or is draining.

Every request to a known webhook is recorded in its delivery history (``deliveries``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from automations.domain import errors, events, webhooks
from automations.webhooks import (
    deliveries,
    directory,
    inline,
    meter,
    processing,
    rate_limit,
    requests,
    signatures,
    workers,
)

logger = logging.getLogger(__name__)

Publish = Callable[[Sequence[events.Event], Sequence[Any] | None], Awaitable[list[bool]]]
"""``Writer.publish``: commits events, returns new(True)/duplicate per event."""

BACKPRESSURE_RETRY_SECONDS = 1
"""``Retry-After`` of a 503 under backpressure."""
DRAINING_RETRY_SECONDS = 5
"""``Retry-After`` of a 503 while the engine starts or drains."""
MAX_ERROR_CHARS = 1000
"""The longest error message sent back in a 400."""

_VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """The HTTP response to send.

    Attributes:
        status: The status code.
        headers: Extra headers.
        body: The body (JSON when not empty).
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def error_answer(status: int, message: str, *headers: tuple[str, str]) -> Answer:
    """An error answer: ``{"error": message}`` (cut to ``MAX_ERROR_CHARS``) and ``headers``."""
    text = message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 3] + "..."
    return Answer(status, headers, orjson.dumps({"error": text}))


NOT_FOUND = error_answer(404, "no such webhook")
NO_CONTENT = Answer(204)
"""The answer to a request whose events are committed."""


def _validation_code(request: requests.Request) -> str | None:
    """The validation code of an Azure Event Grid subscription-validation request, if it is one."""
    kind = request.headers.get("aeg-event-type")
    if kind is None or str(kind).lower() != "subscriptionvalidation":
        return None
    try:
        body: Any = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        return None
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, dict) and item.get("eventType") == _VALIDATION_EVENT:
            code = (item.get("data") or {}).get("validationCode")
            if isinstance(code, str):
                return code
    return None


class Receiver:
    """Answers webhook requests (see the module docstring).

    Args:
        webhooks_by_slug: The known webhooks.
        publish: Commits events (``Writer.publish``).
        pool: Threads for the CPU work.
        history: The delivery history.
        prepare: Encodes an event's event-log row ahead of the writer.
        limiter: The per-webhook rate limits.
        inline_policy: Which requests are processed on the event loop (``inline``).
        metered: Where the metrics go (the engine's Prometheus metrics by default).
        clock: Wall clock, seconds since the epoch.
        on_miss: Awaited when a request names a slug not served here, before looking it up
            again (cluster mode: has the engine sync the webhooks other replicas changed).
    """

    def __init__(
        self,
        webhooks_by_slug: directory.Directory,
        publish: Publish,
        pool: workers.WorkerPool,
        history: deliveries.DeliveryLog,
        *,
        prepare: Callable[[events.Event], Any] | None = None,
        limiter: rate_limit.RateLimiter | None = None,
        inline_policy: inline.InlinePolicy | None = None,
        metered: meter.Meter | None = None,
        clock: Callable[[], float] = time.time,
        on_miss: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self._directory = webhooks_by_slug
        self._on_miss = on_miss
        self._publish = publish
        self._pool = pool
        self._history = history
        self._prepare = prepare
        self._limiter = limiter or rate_limit.RateLimiter()
        self._inline = inline_policy or inline.InlinePolicy()
        self._meter: meter.Meter = metered or meter.PrometheusMeter()
        self._clock = clock

    def webhook(self, slug: str) -> webhooks.Webhook | None:
        """The enabled webhook with that slug, or None."""
        found = self._directory.get(slug)
        return found if found is not None and found.enabled else None

    async def find(self, slug: str) -> webhooks.Webhook | None:
        """:meth:`webhook`; on a miss, once more after ``on_miss`` (if given)."""
        found = self.webhook(slug)
        if found is None and self._on_miss is not None:
            try:
                await self._on_miss()
            except errors.AutomationsError:  # the engine is gone or refused: what is known
                logger.warning("syncing the webhooks for an unknown slug failed", exc_info=True)
            found = self.webhook(slug)
        return found

    def not_found(self) -> Answer:
        """Counts a request to an unknown or disabled webhook and answers it (404)."""
        self._meter.request("not_found", None)
        return NOT_FOUND

    def refuse(
        self, webhook: webhooks.Webhook, request: requests.Request, answer: Answer, outcome: str
    ) -> Answer:
        """Records a request refused before it was processed (e.g. 405, 413) and answers it."""
        self._record(webhook, request, answer, outcome, error=_message(answer))
        return answer

    async def handle(self, slug: str, request: requests.Request) -> Answer:
        """Answers one request to ``/hooks/<slug>``."""
        webhook = self.webhook(slug)
        if webhook is None:
            return self.not_found()
        return await self.answer(webhook, request)

    async def answer(self, webhook: webhooks.Webhook, request: requests.Request) -> Answer:
        """Answers one request to a known, enabled webhook.

        One coroutine from the checks to the commit (helpers are plain functions, the publish a
        future): under load each level of coroutines a request goes through costs its creation
        and a pass on each suspension and resumption, ~1 us per level.
        """
        refused, delivery_id = self._admit(webhook, request)
        if refused is not None:
            return refused
        try:
            done = self._render_inline(webhook, request, delivery_id)
            if done is None:
                prepare = self._prepare
                done = await self._pool.run(
                    lambda: processing.process(
                        webhook, request, delivery_id=delivery_id, prepare=prepare
                    )
                )
        except processing.Failed as exc:
            await self._publish_failure(exc.failed_event)
            answer = error_answer(400, exc.message)
            self._record(
                webhook, request, answer, "invalid", error=exc.message, rendered=exc.rendered
            )
            return answer
        try:
            flags = await self._publish(done.events, done.rows)
        except errors.ResourceExhausted as exc:
            answer = error_answer(
                503, exc.message, ("Retry-After", str(BACKPRESSURE_RETRY_SECONDS))
            )
            return self.refuse(webhook, request, answer, "unavailable")
        except errors.Unavailable as exc:
            answer = error_answer(503, exc.message, ("Retry-After", str(DRAINING_RETRY_SECONDS)))
            return self.refuse(webhook, request, answer, "unavailable")
        except errors.InvalidArgument as exc:
            return self.refuse(webhook, request, error_answer(400, exc.message), "invalid")
        fresh = sum(flags)
        self._meter.events(fresh, len(flags) - fresh)
        self._record(
            webhook,
            request,
            NO_CONTENT,
            "accepted" if fresh else "duplicate",
            rendered=done.rendered,
            built=done.events,
        )
        return NO_CONTENT

    def _admit(
        self, webhook: webhooks.Webhook, request: requests.Request
    ) -> tuple[Answer | None, str | None]:
        """Steps 2-5 of the module docstring: a refusal or handshake answer, or the delivery id."""
        wait = self._limiter.acquire(webhook.id, webhook.rate_limit)
        if wait > 0:
            answer = error_answer(
                429,
                f"over this webhook's rate limit of {webhook.rate_limit:g} requests/s",
                ("Retry-After", rate_limit.retry_after(wait)),
            )
            return self.refuse(webhook, request, answer, "rate_limited"), None
        if request.method == "OPTIONS":  # only the CloudEvents validation handshake
            origin = request.headers.get("webhook-request-origin")
            if not origin:
                answer = error_answer(
                    405,
                    "OPTIONS is only the CloudEvents validation handshake (WebHook-Request-Origin)",
                    ("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),
                )
                return self.refuse(webhook, request, answer, "method_not_allowed"), None
            answer = Answer(200, (("WebHook-Allowed-Origin", str(origin)),))
            return self.refuse(webhook, request, answer, "handshake"), None
        try:
            delivery_id = signatures.authenticate(webhook, request, now=self._clock())
        except signatures.AuthFailed as exc:
            extra = (("WWW-Authenticate", "Bearer"),) if exc.status == 401 else ()
            outcome = "unauthenticated" if exc.status == 401 else "forbidden"
            answer = error_answer(exc.status, exc.message, *extra)
            return self.refuse(webhook, request, answer, outcome), None
        code = _validation_code(request) if request.method == "POST" else None
        if code is not None:
            answer = Answer(200, (), orjson.dumps({"validationResponse": code}))
            return self.refuse(webhook, request, answer, "handshake"), None
        return None, delivery_id

    def _render_inline(
        self, webhook: webhooks.Webhook, request: requests.Request, delivery_id: str | None
    ) -> processing.Processed | None:
        """The request's events, made on the event loop when ``inline`` allows (else None).

        Raises:
            processing.Failed: The template failed, or its result is not valid events.
        """
        budget = self._inline.budget(webhook.id, len(request.body))
        if budget is None:
            return None
        try:
            done = processing.process(
                webhook, request, delivery_id=delivery_id, prepare=self._prepare, budget=budget
            )
        except processing.Failed:
            if not budget.ran_out:
                raise
        else:
            if not budget.ran_out:
                return done
        self._inline.ran_out(webhook.id)  # thrown away: again with the full budget, on a thread
        return None

    async def _publish_failure(self, event: events.Event) -> None:
        """Publishes a ``webhook.failed`` event; if the engine cannot take it now, logs it."""
        try:
            await self._publish([event], None)
        except errors.AutomationsError as exc:
            logger.warning("webhook.failed event not published", extra={"error": exc.message})

    def _record(
        self,
        webhook: webhooks.Webhook,
        request: requests.Request,
        answer: Answer,
        outcome: str,
        *,
        error: str = "",
        rendered: str = "",
        built: Sequence[events.Event] = (),
    ) -> None:
        duration = max(0.0, self._clock() - request.received)
        self._meter.request(outcome, duration)
        self._history.add(
            deliveries.Pending(
                webhook.id,
                request.received,
                request.method,
                answer.status,
                duration,
                error,
                deliveries.recorded(rendered),
                request.headers,
                tuple(event.id for event in built),
            )
        )


def _message(answer: Answer) -> str:
    if answer.status < 400 or not answer.body:
        return ""
    try:
        return str(orjson.loads(answer.body).get("error", ""))
    except (orjson.JSONDecodeError, AttributeError):
        return ""
