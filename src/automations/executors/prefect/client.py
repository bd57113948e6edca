"""Calls to a Prefect server's REST API over one shared ``httpx.AsyncClient``.

Every call carries Prefect's automation headers, ``Prefect-Automation-ID`` and
``Prefect-Automation-Name`` (base64 of the name), as Prefect's own actions send them, so runs and
state changes are attributed to the automation. Authentication, when configured: a Prefect Cloud
style API key as ``Authorization: Bearer``, or a self-hosted server's ``auth_string`` as
``Authorization: Basic``.

Failures become :class:`~automations.executor._errors.ActionError` by the executor protocol's
rules (:func:`failure_for_response`): what a retry cannot change is final (404 NOT_FOUND, 401/403
PERMISSION_DENIED, 400/422 and validation conflicts INVALID_ARGUMENT, other 3xx/4xx
FAILED_PRECONDITION); what may pass is retried (408, 429 and 5xx UNAVAILABLE, connection errors
UNAVAILABLE, timeouts DEADLINE_EXCEEDED). The message is Prefect's reason for the status
(``Unexpected status from 'pause-deployment' action: 404``, ``Validation error occurred for
'run-deployment' - ...``, ``Conflict (409) occurred for ...``).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import grpc
import httpx

from automations import executor
from automations.executor.v1 import executor_service_pb2
from automations.executors import http

DEFAULT_TIMEOUT_SECONDS = 10.0
"""How long one Prefect API call may take unless ``--timeout`` says otherwise."""

MAX_ERROR_BODY_CHARS = 500
"""How much of an error response's body the error metadata keeps."""

USER_AGENT = "automations-prefect/1"
"""The ``User-Agent`` of every call."""

RETRYABLE_STATUSES = frozenset({408, 425, 429})
"""4xx statuses that may pass on a retry (with every 5xx)."""


def automation_headers(automation: executor_service_pb2.AutomationRef) -> dict[str, str]:
    """Prefect's ``Prefect-Automation-ID`` and base64 ``Prefect-Automation-Name`` headers."""
    return {
        "Prefect-Automation-ID": automation.uid,
        "Prefect-Automation-Name": base64.b64encode(automation.display_name.encode()).decode(),
    }


def _detail(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    if detail is None or detail == "":
        return None
    return detail if isinstance(detail, str) else str(detail)


def prefect_reason(response: httpx.Response, action_type: str) -> str:
    """The reason Prefect gives for an HTTP status >= 300 (``reason_from_response``)."""
    status = response.status_code
    if status in (409, 422):
        detail = _detail(response)
        if status == 422 or detail:
            suffix = f" - {detail}" if detail else ""
            return f"Validation error occurred for {action_type!r}{suffix}"
        return f"Conflict (409) occurred for {action_type!r} - {response.text!r}"
    return f"Unexpected status from {action_type!r} action: {status}"


def _code_for(response: httpx.Response) -> tuple[grpc.StatusCode, str]:
    status = response.status_code
    if status >= 500 or status in RETRYABLE_STATUSES:
        return grpc.StatusCode.UNAVAILABLE, "PREFECT_API_UNAVAILABLE"
    if status == 404:
        return grpc.StatusCode.NOT_FOUND, "PREFECT_NOT_FOUND"
    if status in (401, 403):
        return grpc.StatusCode.PERMISSION_DENIED, "PREFECT_PERMISSION_DENIED"
    if status in (400, 422) or (status == 409 and _detail(response)):
        return grpc.StatusCode.INVALID_ARGUMENT, "PREFECT_VALIDATION_ERROR"
    if status == 409:
        return grpc.StatusCode.FAILED_PRECONDITION, "PREFECT_CONFLICT"
    return grpc.StatusCode.FAILED_PRECONDITION, "PREFECT_UNEXPECTED_STATUS"


def failure_for_response(response: httpx.Response, action_type: str) -> executor.ActionError:
    """The error for a Prefect API answer with status >= 300 (see the module docstring)."""
    code, reason = _code_for(response)
    metadata = {
        "status_code": str(response.status_code),
        "response_body": response.text[:MAX_ERROR_BODY_CHARS],
    }
    if "retry-after" in response.headers:
        metadata["retry_after"] = response.headers["retry-after"]
    return executor.ActionError(code, prefect_reason(response, action_type), reason, metadata)


def json_body(response: httpx.Response) -> Any:
    """The JSON body of a successful answer; a retryable INTERNAL error if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        raise executor.ActionError(
            grpc.StatusCode.INTERNAL,
            f"The Prefect API answered {response.status_code} without a JSON body",
            "PREFECT_RESPONSE_INVALID",
        ) from None


FAILURES = http.Failures(
    timeout_message="The Prefect API did not answer within {timeout} s",
    timeout_reason="PREFECT_API_TIMEOUT",
    unreachable_message="The Prefect API could not be reached: {error}",
    unreachable_reason="PREFECT_API_UNREACHABLE",
    forbidden_reason="PREFECT_API_FORBIDDEN",
)
"""How a Prefect API call's transport failures are worded."""


class PrefectClient:
    """One Prefect server's REST API (``.../api``), shared by every action.

    Args:
        api_url: The API's base URL, e.g. ``http://127.0.0.1:4200/api``.
        timeout_seconds: How long one call may take.
        api_key: Sent as ``Authorization: Bearer`` (Prefect Cloud or a proxy), when given.
        auth_string: A self-hosted server's ``user:password``, sent as ``Authorization: Basic``.
        transport: The HTTP transport (tests pass an ``httpx.MockTransport``).
    """

    def __init__(
        self,
        api_url: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        api_key: str | None = None,
        auth_string: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        elif auth_string:
            token = base64.b64encode(auth_string.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self.api_url = api_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._client = httpx.AsyncClient(
            base_url=self.api_url,
            headers=headers,
            timeout=timeout_seconds,
            follow_redirects=False,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Closes the HTTP client."""
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        action_type: str,
        headers: Mapping[str, str],
        json: Any = None,
        send_json: bool = False,
    ) -> httpx.Response:
        """Sends one request; returns a 2xx answer, raises executor.ActionError otherwise.

        Args:
            method: The HTTP method.
            path: Relative to the API URL, e.g. ``/flow_runs/<id>/set_state``.
            action_type: Names the action in failure reasons.
            headers: Extra headers (the automation headers).
            json: The JSON body, sent when not None or when ``send_json``.
            send_json: Send ``json`` even when it is None (as ``null``).

        Raises:
            executor.ActionError: The API could not be reached (UNAVAILABLE), did not answer in time
                (DEADLINE_EXCEEDED) or answered with a status >= 300 (:func:`failure_for_response`).
        """
        kwargs: dict[str, Any] = {"headers": dict(headers)}
        if json is not None or send_json:
            kwargs["json"] = json
        with http.transport_failures(
            FAILURES, timeout=self.timeout_seconds, details={"api_url": self.api_url}
        ):
            response = await self._client.request(method, path, **kwargs)
        if response.status_code >= 300:
            raise failure_for_response(response, action_type)
        return response
