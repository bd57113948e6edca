"""The ``webhook`` executor: action type ``call-webhook`` (Prefect's CallWebhook) over httpx.

Parameters (rendered by the engine): ``url`` (required), ``method`` (default POST), ``headers``
(strings), ``payload`` (the raw body, default ""; a dict or list is JSON-dumped with indent 2 as
Prefect does with a legacy dict payload, keys sorted) and ``timeout`` (seconds; ``--timeout``, 10 s, by default).
Every request carries the invocation's key in an ``Idempotency-Key`` header, the same on every
retry, so that the receiver can dedupe. Redirects are not followed.

The result is Prefect's: ``{"status_code", "response_body" (first 1000 characters),
"response_headers"}``, with sensitive headers removed (see :func:`redact_headers`).

Outcomes. As in Prefect, a non-2xx response does not fail the action: 2xx, 3xx and 4xx responses
are OK and the status is recorded. **Deliberate difference from Prefect:** 408, 429 and 5xx mean
the receiver is overloaded or briefly down, so they are a retryable UNAVAILABLE (reason
``WEBHOOK_RETRYABLE_STATUS``, with the status and the start of the body in the metadata) and the
engine calls again later, with the same ``Idempotency-Key``. A connection error is UNAVAILABLE, a
timeout DEADLINE_EXCEEDED. Cloud metadata addresses are always refused with PERMISSION_DENIED, and
with ``--deny-private-networks`` private networks too (:mod:`automations.executors.network_policy`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import grpc
import httpx

from automations import executor
from automations.executor.v1 import executor_service_pb2
from automations.executors import http, network_policy

ACTION_TYPE = "call-webhook"
"""The action type this executor serves."""

DEFAULT_TIMEOUT_SECONDS = 10.0
"""How long a request may take when neither the action nor ``--timeout`` says otherwise."""
POOL_LIMITS = httpx.Limits(max_connections=1024, max_keepalive_connections=128)
"""Connections open at once (all hosts) and kept idle for reuse. The engine keeps up to 1,024
invocations in flight (``AUTOMATIONS_DISPATCH_CONCURRENCY``); with httpx's default pool of 100,
the calls beyond it waited for a connection within their own timeout and failed as timeouts
(then retried) although the receiver was answering."""

MAX_BODY_CHARS = 1000
"""How much of the response body the result keeps (as Prefect)."""

MAX_ERROR_BODY_CHARS = 500
"""How much of the response body a retryable error's metadata keeps."""

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
"""The HTTP methods a webhook may use."""

SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "traceparent", "via"}
)
"""Response headers never recorded in the result."""

SENSITIVE_HEADER_PREFIXES = ("x-forwarded", "x-b3", "x-envoy", "x-prefect", "x-cloud-trace")
"""Families of response headers never recorded in the result."""

USER_AGENT = "automations-webhook/1"
"""The ``User-Agent`` sent unless the action's headers set one."""


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers without the sensitive ones, names lower-cased, repeated values comma-joined."""
    kept: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in SENSITIVE_HEADERS or lower.startswith(SENSITIVE_HEADER_PREFIXES):
            continue
        kept[lower] = f"{kept[lower]}, {value}" if lower in kept else value
    return kept


def render_payload(payload: Any) -> str:
    """The request body for ``payload``: a string as it is, None as "", anything else as JSON.

    JSON is indented by 2 as in Prefect; keys are sorted because a ``Struct`` does not keep their
    order, so that every retry sends the same bytes.
    """
    if payload is None:
        return ""
    if isinstance(payload, str):
        return payload
    return json.dumps(executor.as_int_if_whole(payload), indent=2, sort_keys=True)


def _headers(value: Any, idempotency_key: str) -> dict[str, str]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise executor.invalid_argument(
            "parameters.headers", "headers must be an object of strings", "WEBHOOK_HEADERS_INVALID"
        )
    headers: dict[str, str] = {}
    for name, raw in value.items():
        if isinstance(raw, dict | list) or raw is None:
            raise executor.invalid_argument(
                "parameters.headers",
                f"header {name!r} must be a string",
                "WEBHOOK_HEADERS_INVALID",
            )
        if name.lower() == "idempotency-key":
            continue
        headers[name] = str(executor.as_int_if_whole(raw))
    if not any(name.lower() == "user-agent" for name in headers):
        headers["User-Agent"] = USER_AGENT
    headers["Idempotency-Key"] = idempotency_key
    return headers


def _url(value: Any) -> httpx.URL:
    if not isinstance(value, str) or not value.strip():
        raise executor.invalid_argument(
            "parameters.url", "A webhook needs a url", "WEBHOOK_URL_MISSING"
        )
    try:
        url = httpx.URL(value.strip())
    except httpx.InvalidURL:
        raise executor.invalid_argument(
            "parameters.url", "The webhook url is not a valid URL", "WEBHOOK_URL_INVALID"
        ) from None
    if url.scheme not in ("http", "https"):
        raise executor.invalid_argument(
            "parameters.url",
            "The webhook url must use http or https",
            "WEBHOOK_URL_SCHEME_UNSUPPORTED",
        )
    if not url.host:
        raise executor.invalid_argument(
            "parameters.url", "The webhook url has no host", "WEBHOOK_URL_INVALID"
        )
    return url


def _timeout(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise executor.invalid_argument(
            "parameters.timeout",
            "timeout must be a positive number of seconds",
            "WEBHOOK_TIMEOUT_INVALID",
        )
    return float(value)


FAILURES = http.Failures(
    timeout_message="The webhook did not answer within {timeout} s",
    timeout_reason="WEBHOOK_TIMEOUT",
    unreachable_message="The webhook request failed: {error}",
    unreachable_reason="WEBHOOK_CONNECTION_FAILED",
    forbidden_reason="WEBHOOK_URL_FORBIDDEN",
)
"""How a webhook call's transport failures are worded."""


def _forbidden(message: str) -> executor.ActionError:
    return executor.ActionError(grpc.StatusCode.PERMISSION_DENIED, message, "WEBHOOK_URL_FORBIDDEN")


class WebhookCaller:
    """Handles ``call-webhook`` invocations with one shared ``httpx.AsyncClient``.

    Args:
        timeout_seconds: The default request timeout.
        deny_private_networks: Also refuse loopback and private addresses.
        client: The HTTP client to use (one is created when omitted).
    """

    def __init__(
        self,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        deny_private_networks: bool = False,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._timeout = timeout_seconds
        self._deny_private = deny_private_networks
        self._client = client or httpx.AsyncClient(follow_redirects=False, limits=POOL_LIMITS)

    async def aclose(self) -> None:
        """Closes the HTTP client."""
        await self._client.aclose()

    async def check_destination(self, url: httpx.URL) -> None:
        """Raises PERMISSION_DENIED unless ``url``'s host may be called (see network_policy)."""
        host = url.host
        if network_policy.is_metadata_hostname(host):
            raise _forbidden("The webhook url points at a cloud metadata service")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await network_policy.resolve(host, port)
        except OSError as exc:
            raise executor.ActionError(
                grpc.StatusCode.UNAVAILABLE,
                "The webhook host does not resolve",
                "WEBHOOK_HOST_UNRESOLVED",
                {"error": str(exc)[:200]},
            ) from None
        for address in addresses:
            if not network_policy.allowed(address, deny_private_networks=self._deny_private):
                kind = network_policy.classify(address).value
                raise _forbidden(f"The webhook url resolves to a forbidden {kind} address")

    async def __call__(self, request: executor_service_pb2.ExecuteActionRequest) -> dict[str, Any]:
        """Calls the webhook once; returns Prefect's result or raises executor.ActionError."""
        params = executor.parameters_to_dict(request.parameters)
        url = _url(params.get("url"))
        method = str(params.get("method") or "POST").upper()
        if method not in METHODS:
            raise executor.invalid_argument(
                "parameters.method", f"Unsupported HTTP method {method!r}", "WEBHOOK_METHOD_INVALID"
            )
        headers = _headers(params.get("headers"), request.idempotency_key)
        body = render_payload(params.get("payload"))
        timeout = _timeout(params.get("timeout"), self._timeout)
        await self.check_destination(url)
        with http.transport_failures(FAILURES, timeout=timeout):
            status_code, text, response_headers = await self._send(
                method, url, headers, body, timeout
            )
        if status_code in (408, 429) or status_code >= 500:
            metadata = {
                "status_code": str(status_code),
                "response_body": text[:MAX_ERROR_BODY_CHARS],
            }
            if "retry-after" in response_headers:
                metadata["retry_after"] = response_headers["retry-after"]
            raise executor.ActionError(
                grpc.StatusCode.UNAVAILABLE,
                f"The webhook answered {status_code}; it will be called again",
                "WEBHOOK_RETRYABLE_STATUS",
                metadata,
            )
        return {
            "status_code": status_code,
            "response_body": text,
            "response_headers": response_headers,
        }

    async def _send(
        self, method: str, url: httpx.URL, headers: dict[str, str], body: str, timeout: float
    ) -> tuple[int, str, dict[str, str]]:
        request = self._client.build_request(
            method, url, headers=headers, content=body.encode(), timeout=timeout
        )
        response = await self._client.send(request, stream=True)
        try:
            limit = MAX_BODY_CHARS * 4
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= limit:
                    break
        finally:
            await response.aclose()
        encoding = response.charset_encoding or "utf-8"
        try:
            text = b"".join(chunks).decode(encoding, errors="replace")
        except LookupError:
            text = b"".join(chunks).decode("utf-8", errors="replace")
        return (
            response.status_code,
            text[:MAX_BODY_CHARS],
            redact_headers(response.headers.multi_items()),
        )
