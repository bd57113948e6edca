"""Masking secrets in what the engine writes down: logs and its own lifecycle events.

Actions carry their targets inline (a webhook's URL and headers, a notification's Apprise URL),
and those hold credentials: a password in the URL's user part, a token in its query or path, an
``Authorization`` header. Whatever the engine records about an action (the
``prefect.automation.*`` events kept in the event log, the log lines) goes through here first:

* in a URL, the password of the user part, the values of its query parameters, and every path
  segment of a non-HTTP URL (Apprise URLs keep their tokens there: ``slack://TokenA/TokenB``,
  and a host that looks like a token too) or long enough to be a token in an HTTP one
  (``/services/T000/B000/XXXXXXXXXXXXXXXX``) are replaced by ``****``;
* in a mapping, the value of any key that names a secret (``authorization``, ``token``,
  ``password``, ``api_key``...) is replaced by ``****``.

What stays is enough to tell targets apart: the scheme, the host, the user name and the short
path segments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "****"
"""What a secret is replaced with."""

_SECRET_KEY = re.compile(
    r"(authorization|token|secret|password|passwd|pwd|api[-_]?key|apikey|cookie|signature|"
    r"sig|credential|private[-_]?key|access[-_]?key|auth)",
    re.IGNORECASE,
)
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]{1,31})://([^\s\"'<>]+)")
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{16,}")
_WEB = frozenset({"http", "https", "ws", "wss"})
_PATHS_KEPT = re.compile(r"^(file|sqlite|postgres|postgresql|mysql|mariadb|nats|redis)(\+\w+)?$")
"""Schemes whose path names a file or a database, not a secret (the password is still masked)."""
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def is_secret_key(key: str) -> bool:
    """Whether a mapping key (a header, a parameter) names something secret."""
    return bool(_SECRET_KEY.search(key))


def _mask_url(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    rest, hash_mark, _fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    web = scheme.lower() in _WEB or bool(_PATHS_KEPT.match(scheme.lower()))
    if not web and (_TOKEN_LIKE.fullmatch(host) or not _HOST.fullmatch(host)):
        host = MASK  # an Apprise URL's first token: tgram://BOT:TOKEN/CHAT
    if at:
        name, colon, _password = user.partition(":")
        authority = f"{name}:{MASK}@{host}" if colon else f"{user}@{host}"
    else:
        authority = host
    if path:
        path = "/".join(
            segment if not segment or (web and not _TOKEN_LIKE.fullmatch(segment)) else MASK
            for segment in path.split("/")
        )
    if query:
        query = "&".join(
            f"{pair.partition('=')[0]}={MASK}" if "=" in pair else pair for pair in query.split("&")
        )
    return f"{scheme}://{authority}{slash}{path}{question}{query}" + (
        f"{hash_mark}{MASK}" if hash_mark else ""
    )


def text(value: str) -> str:
    """``value`` with the secrets of every URL in it masked."""
    if "://" not in value:
        return value
    return _URL.sub(_mask_url, value)


def value(data: Any) -> Any:
    """A JSON-like value with every URL's secrets, and every secret-named key's value, masked."""
    if isinstance(data, str):
        return text(data)
    if isinstance(data, Mapping):
        return {
            key: MASK if isinstance(key, str) and is_secret_key(key) else value(item)
            for key, item in data.items()
        }
    if isinstance(data, list | tuple):
        return [value(item) for item in data]
    return data
