"""The ``notify`` executor: action type ``send-notification`` through Apprise (100+ services).

Parameters (rendered by the engine): ``url`` or ``urls`` (one Apprise URL or a list of them;
they carry tokens, so they are never echoed back in results, messages or logs), ``subject``
(default "Prefect automated notification") and ``body`` (required).

Apprise's ``notify`` blocks, so it runs in a worker thread, bounded by ``--timeout``. Its log of
the call (the per-call log Apprise 2 returns with the result, so concurrent notifications never
mix their logs; ``apprise.LogCapture`` with Apprise 1.x) goes into the error on failure, as
Prefect's ``notification_log``.

Outcomes: OK with ``{"notified": N}`` (N services); a missing or unparseable URL or a missing
body is INVALID_ARGUMENT; a failed delivery is a retryable UNAVAILABLE "Notification failed"
with the log (truncated) in the ``notification_log`` metadata.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any

import apprise
import grpc

from automations import executor
from automations.executor.v1 import executor_service_pb2
from automations.executors import network_policy

ACTION_TYPE = "send-notification"
"""The action type this executor serves."""

DEFAULT_SUBJECT = "Prefect automated notification"
"""Prefect's default subject."""

DEFAULT_TIMEOUT_SECONDS = 10.0
"""How long one notification call may take unless ``--timeout`` says otherwise."""

MAX_LOG_CHARS = 2000
"""How much of Apprise's log the error metadata keeps (the end, where the failure is)."""

PER_CALL_LOGS = hasattr(apprise, "AppriseResult")
"""Apprise 2 returns each call's log with its result; 1.x needs ``LogCapture``."""

APP_ID = "Prefect Notifications"
"""The Apprise application id, as Prefect's notification blocks set it."""


def _urls(params: dict[str, Any]) -> list[str]:
    raw: Any = params.get("urls")
    if raw is None or raw == []:
        raw = params.get("url")
    values = raw if isinstance(raw, list) else [raw]
    urls = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    if not urls:
        raise executor.invalid_argument(
            "parameters.url", "A notification needs an Apprise url", "NOTIFICATION_URL_MISSING"
        )
    return urls


def _text(params: dict[str, Any], name: str, default: str | None) -> str:
    value = params.get(name)
    if value is None or value == "":
        if default is None:
            raise executor.invalid_argument(
                f"parameters.{name}",
                f"A notification needs a {name}",
                f"NOTIFICATION_{name.upper()}_MISSING",
            )
        return default
    return value if isinstance(value, str) else str(executor.as_int_if_whole(value))


def format_log(entries: list[tuple[str, str]]) -> str:
    """Apprise's log lines as ``LEVEL - message``, keeping the last ``MAX_LOG_CHARS``."""
    text = "\n".join(f"{level} - {message}" for level, message in entries)
    return text[-MAX_LOG_CHARS:]


_HOST_IS_DESTINATION = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
"""Apprise schemes whose URL host is the server the notification is sent to."""


def _forbidden(message: str) -> executor.ActionError:
    return executor.ActionError(
        grpc.StatusCode.PERMISSION_DENIED,
        f"The notification was refused by the network policy: {message}",
        "NOTIFICATION_URL_FORBIDDEN",
    )


class Notifier:
    """Handles ``send-notification`` invocations.

    Args:
        timeout_seconds: How long one notification call may take.
        deny_private_networks: Also refuse loopback and private addresses.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        deny_private_networks: bool = False,
    ) -> None:
        self._timeout = timeout_seconds
        self._deny_private = deny_private_networks
        self._asset = apprise.AppriseAsset(app_id=APP_ID)
        apprise.Apprise(asset=self._asset)  # loads the plugins now, not on the first call

    def prepare(self, urls: list[str]) -> apprise.Apprise:
        """An Apprise object for ``urls``; INVALID_ARGUMENT naming the first one it cannot parse."""
        notifier = apprise.Apprise(asset=self._asset)
        for index, url in enumerate(urls):
            if not notifier.add(url):
                raise executor.invalid_argument(
                    f"parameters.urls[{index}]",
                    f"Notification url #{index + 1} is not a valid Apprise URL",
                    "NOTIFICATION_URL_INVALID",
                )
        return notifier

    async def __call__(self, request: executor_service_pb2.ExecuteActionRequest) -> dict[str, Any]:
        """Sends the notification; returns ``{"notified": N}`` or raises executor.ActionError."""
        params = executor.parameters_to_dict(request.parameters)
        urls = _urls(params)
        body = _text(params, "body", None)
        subject = _text(params, "subject", DEFAULT_SUBJECT)
        notifier = self.prepare(urls)
        for url in urls:
            await self._check_destination(url)
        refused_before = network_policy.refusal_count()
        ok, log = await asyncio.to_thread(self._send, notifier, subject, body)
        if not ok and network_policy.refusal_count() != refused_before:
            # a redirect, or a DNS answer, into a refused network: the connection was refused
            raise _forbidden(network_policy.last_refusal())
        if not ok:
            raise executor.ActionError(
                grpc.StatusCode.UNAVAILABLE,
                "Notification failed",
                "NOTIFICATION_FAILED",
                {"notification_log": log},
            )
        return {"notified": len(notifier)}

    async def _check_destination(self, url: str) -> None:
        """PERMISSION_DENIED when ``url`` names a refused address itself (json://169.254...).

        Only for the schemes whose host is where the notification goes; every connection is also
        checked when it is made (``network_policy.guard_connections``).
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() not in _HOST_IS_DESTINATION or not parts.hostname:
            return
        if network_policy.is_metadata_hostname(parts.hostname):
            raise _forbidden(f"{parts.hostname} is a cloud metadata service")
        try:
            addresses = await network_policy.resolve(parts.hostname, parts.port or 80)
        except OSError:
            return  # Apprise reports the failure when it sends
        for address in addresses:
            if not network_policy.allowed(address, deny_private_networks=self._deny_private):
                kind = network_policy.classify(address).value
                raise _forbidden(f"the notification url resolves to a forbidden {kind} address")

    def _send(self, notifier: apprise.Apprise, subject: str, body: str) -> tuple[bool, str]:
        if not PER_CALL_LOGS:
            return _send_with_log_capture(notifier, subject, body)
        result = notifier.notify(
            body=body, title=subject, timeout=self._timeout, log_level=logging.INFO
        )
        entries = [(str(e.level), str(e.message)) for e in result.logs()]
        return bool(result), format_log(entries)


def _send_with_log_capture(notifier: Any, subject: str, body: str) -> tuple[bool, str]:
    """Apprise 1.x: ``notify`` returns a bool and the log comes from ``LogCapture``.

    LogCapture listens on Apprise's global logger, so notifications sent at the same moment may
    see each other's lines; Apprise 2 returns each call's own log instead.
    """
    with apprise.LogCapture(level=logging.INFO) as output:  # type: ignore[no-untyped-call]
        ok = bool(notifier.notify(body=body, title=subject))
    text: str = output.getvalue()
    return ok, text[-MAX_LOG_CHARS:]
