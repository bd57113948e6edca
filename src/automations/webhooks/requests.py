"""A webhook request and the template context made from it (Prefect's, plus query, path, raw body).

The context Prefect documents is ``method`` (upper case), ``headers`` (case-insensitive, without
``Authorization``) and ``body``, parsed best-effort: JSON for ``application/json``, a flat mapping
of the fields of a form (``application/x-www-form-urlencoded``; a repeated field keeps its last
value), otherwise JSON if the body parses as JSON, otherwise the text ("" when empty). Added here:
``query`` (the query string's parameters, a flat mapping like a form), ``path`` (what follows the
slug in the URL, e.g. ``/github`` for ``/hooks/<slug>/github``; "" for none) and ``raw_body``
(the body as text, for templates that need it as sent).
"""

from __future__ import annotations

import dataclasses
import functools
import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson

from automations.actions.templates import webhooks as webhook_templates
from automations.domain import redaction

FORM = "application/x-www-form-urlencoded"


Headers = webhook_templates.Headers
"""Request headers, case-insensitive (the type templates see as ``headers``)."""


@dataclasses.dataclass(slots=True)
class Request:
    """What a webhook received; treat it as immutable once its body is set.

    Not ``frozen``: a frozen dataclass sets each field through ``object.__setattr__``, several
    times the cost of a plain ``__init__``, for every request; and the HTTP app makes one request
    from the headers, which a refusal before the body records, and gives it the body once read.

    Attributes:
        method: The HTTP method, upper case.
        headers: Every header (``Authorization`` included: authentication needs it).
        body: The raw body.
        query: The raw query string.
        path: What follows the slug in the URL path ("" or ``/...``).
        received: When it arrived, seconds since the epoch.
    """

    method: str
    headers: Headers
    body: bytes
    query: str = ""
    path: str = ""
    received: float = 0.0


def parse_body(raw: bytes, content_type: str) -> Any:
    """The body as templates see it (see the module docstring)."""
    if not raw:
        return ""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == FORM:
        return dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def context(request: Request, headers: Headers | None = None) -> dict[str, Any]:
    """The template context of a request.

    Args:
        request: The request.
        headers: Its headers without ``Authorization``, when the caller has them already.
    """
    if headers is None:
        headers = request.headers.without("authorization")
    return {
        "method": request.method,
        "headers": headers,
        "body": parse_body(request.body, headers.get("content-type", "")),
        "query": dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))
        if request.query
        else {},
        "path": request.path,
        "raw_body": request.body.decode("utf-8", "replace"),
    }


def default_payload(ctx: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """Prefect's default payload when the template sets none: ``{method, headers, body}``.

    Args:
        ctx: The template context.
        headers: The headers to show (secrets already masked).
    """
    return {"method": ctx["method"], "headers": dict(headers), "body": ctx["body"]}


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
