"""``automations webhook create|list|get|update|delete|enable|disable|rotate|test|deliveries``.

Webhooks print as JSON with ``--json`` (``id``, ``name``, ``slug``, ``url``, ``template``,
``auth``...), else one line each. Secrets are read from files (``--bearer-token-file``,
``--signing-secret-file``; ``-`` for stdin), never taken on the command line, where every user
of the machine could read them; ``--generate-bearer-token`` makes a random token and prints it
once (it is stored only hashed).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from automations import client
from automations.cli import client_commands as common
from automations.domain import webhooks

_SCHEMES = [scheme.value for scheme in webhooks.SignatureScheme]


def add_parser(sub: Any, with_client_flags: Any) -> None:
    """Adds ``webhook`` and its commands."""
    hook = sub.add_parser("webhook", aliases=["webhooks"], help="manage incoming webhooks")
    w_sub = hook.add_subparsers(dest="webhook_command", required=True)

    p = with_client_flags(w_sub.add_parser("create", help="create a webhook; prints its url"))
    p.add_argument("name")
    p.add_argument("--template", required=True, help="the Jinja template, or @FILE")
    _settings_flags(p)
    p.set_defaults(handler=webhook_create)

    p = with_client_flags(w_sub.add_parser("list", help="list webhooks"))
    p.add_argument("--limit", type=int, default=None, help="print at most N")
    p.set_defaults(handler=webhook_list)

    for verb, handler, text in (
        ("get", webhook_get, "show a webhook"),
        ("delete", webhook_delete, "delete a webhook and its history"),
        ("enable", webhook_enable, "enable a webhook"),
        ("disable", webhook_disable, "disable a webhook (its URL answers 404)"),
        ("rotate", webhook_rotate, "give a webhook a new URL (the old one answers 404)"),
    ):
        p = with_client_flags(w_sub.add_parser(verb, help=text))
        p.add_argument("id")
        p.set_defaults(handler=handler)

    p = with_client_flags(w_sub.add_parser("update", help="change a webhook's settings"))
    p.add_argument("id")
    p.add_argument("--name")
    p.add_argument("--template", help="the Jinja template, or @FILE")
    _settings_flags(p)
    p.add_argument("--no-bearer-token", action="store_true", help="stop requiring a bearer token")
    p.set_defaults(handler=webhook_update)

    p = with_client_flags(
        w_sub.add_parser("test", help="render a sample request without publishing")
    )
    p.add_argument("id")
    p.add_argument("--body", default="", help="the body, or @FILE")
    p.add_argument("--method", default="POST")
    p.add_argument(
        "--header", action="append", default=[], metavar="NAME: VALUE", help="repeatable"
    )
    p.add_argument("--query", default="", help="the query string, e.g. a=1&b=2")
    p.add_argument("--path", default="", help="what follows the slug, e.g. /github")
    p.set_defaults(handler=webhook_test)

    p = with_client_flags(w_sub.add_parser("deliveries", help="a webhook's last requests"))
    p.add_argument("id")
    p.add_argument("--limit", type=int, default=None, help="print at most N")
    p.set_defaults(handler=webhook_deliveries)


def _settings_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--description")
    p.add_argument(
        "--strict",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a missing value in the template is an error (400) instead of ''",
    )
    p.add_argument("--enabled", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--rate-limit", type=float, help="requests per second (0: no limit)")
    p.add_argument("--bearer-token-file", metavar="FILE", help="require this bearer token")
    p.add_argument(
        "--generate-bearer-token",
        action="store_true",
        help="require a new random bearer token, printed once",
    )
    p.add_argument("--signature-scheme", choices=_SCHEMES)
    p.add_argument("--signing-secret-file", metavar="FILE", help="the provider's signing secret")
    p.add_argument("--signature-header", help="the header of the hmac-sha256 scheme")
    p.add_argument(
        "--timestamp-tolerance", type=float, metavar="SECONDS", help="for signed timestamps"
    )


def _text(value: str) -> str:
    """A literal, or the content of ``@FILE`` (``@-``: stdin)."""
    if not value.startswith("@"):
        return value
    path = value[1:]
    return sys.stdin.read() if path == "-" else Path(path).read_text()


def _secret(path: str) -> str:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    lines = text.splitlines()
    return lines[0].strip() if lines else ""


def _fields(args: argparse.Namespace, *, update: bool) -> tuple[dict[str, Any], str]:
    """The settings the flags give, and a generated bearer token ("" if none)."""
    fields: dict[str, Any] = {}
    for flag, key in (
        ("description", "description"),
        ("strict", "strict"),
        ("enabled", "enabled"),
        ("rate_limit", "rate_limit"),
        ("signature_scheme", "signature_scheme"),
        ("signature_header", "signature_header"),
        ("timestamp_tolerance", "timestamp_tolerance"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            fields[key] = value
    if update and args.name is not None:
        fields["name"] = args.name
    if update and args.template is not None:
        fields["template"] = _text(args.template)
    if args.signing_secret_file:
        fields["signing_secret"] = _secret(args.signing_secret_file)
    generated = ""
    if args.generate_bearer_token:
        generated = secrets.token_urlsafe(32)
        fields["bearer_token"] = generated
    elif args.bearer_token_file:
        fields["bearer_token"] = _secret(args.bearer_token_file)
    elif getattr(args, "no_bearer_token", False):
        fields["bearer_token"] = ""
    return fields, generated


def _client(args: argparse.Namespace) -> client.Client:
    return client.Client(channel=common._channel(args))


def _line(hook: dict[str, Any]) -> str:
    state = "enabled" if hook["enabled"] else "disabled"
    return f"{hook['id']}  {state:8}  {hook['slug']}  {hook['name']}  {hook['url']}"


def _show(args: argparse.Namespace, hook: dict[str, Any], token: str = "") -> None:
    if token:
        hook = {**hook, "bearer_token": token}
        print("the bearer token is shown only now:", token, file=sys.stderr)
    common._print(args, hook, lambda h: json.dumps(h, indent=2))


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        result: int = body()
    except client.ClientError as exc:
        print(f"automations: {exc}", file=sys.stderr)
        return 1
    return result


@common._handle
def webhook_create(args: argparse.Namespace) -> int:
    """``webhook create NAME --template TEMPLATE|@FILE [...]``."""
    fields, token = _fields(args, update=False)

    def body() -> int:
        with _client(args) as c:
            _show(args, c.create_webhook(args.name, _text(args.template), **fields), token)
        return 0

    return _run(args, body)


@common._handle
def webhook_update(args: argparse.Namespace) -> int:
    """``webhook update ID [--name] [--template] [...]``."""
    fields, token = _fields(args, update=True)
    if not fields:
        raise common.CommandError("nothing to update: give at least one setting")

    def body() -> int:
        with _client(args) as c:
            _show(args, c.update_webhook(args.id, **fields), token)
        return 0

    return _run(args, body)


@common._handle
def webhook_list(args: argparse.Namespace) -> int:
    """``webhook list [--limit N]``."""

    def body() -> int:
        with _client(args) as c:
            found = c.list_webhooks(limit=args.limit)
        common._print(args, found, lambda items: "\n".join(map(_line, items)) or "(no webhooks)")
        return 0

    return _run(args, body)


def _single(call: Callable[[client.Client, str], dict[str, Any]]) -> Any:
    """A command ``webhook VERB ID`` printing the webhook ``call`` returns."""

    @common._handle
    def command(args: argparse.Namespace) -> int:
        def body() -> int:
            with _client(args) as c:
                _show(args, call(c, args.id))
            return 0

        return _run(args, body)

    return command


webhook_get = _single(lambda c, webhook_id: c.get_webhook(webhook_id))
webhook_enable = _single(lambda c, webhook_id: c.enable_webhook(webhook_id))
webhook_disable = _single(lambda c, webhook_id: c.disable_webhook(webhook_id))
webhook_rotate = _single(lambda c, webhook_id: c.rotate_webhook(webhook_id))


@common._handle
def webhook_delete(args: argparse.Namespace) -> int:
    """``webhook delete ID``."""

    def body() -> int:
        with _client(args) as c:
            c.delete_webhook(args.id)
        print(f"deleted webhook {args.id}", file=sys.stderr)
        return 0

    return _run(args, body)


@common._handle
def webhook_test(args: argparse.Namespace) -> int:
    """``webhook test ID [--body TEXT|@FILE] [--method M] [--header 'N: V']...``.

    Exits 1 when the request would be answered 400.
    """
    headers: dict[str, str] = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise common.CommandError(f"--header {item!r}: expected 'NAME: VALUE'")
        headers[name.strip()] = value.strip()

    def body() -> int:
        with _client(args) as c:
            result = c.test_webhook(
                args.id,
                body=_text(args.body).encode("utf-8"),
                method=args.method.upper(),
                headers=headers,
                query=args.query,
                path=args.path,
            )
        common._print(args, result, lambda r: json.dumps(r, indent=2))
        if result["error"]:
            print(
                f"automations: the request would be answered 400: {result['error']}",
                file=sys.stderr,
            )
            return 1
        return 0

    return _run(args, body)


@common._handle
def webhook_deliveries(args: argparse.Namespace) -> int:
    """``webhook deliveries ID [--limit N]``: newest first."""

    def body() -> int:
        with _client(args) as c:
            found = c.list_webhook_deliveries(args.id, limit=args.limit)
        common._print(
            args,
            found,
            lambda items: (
                "\n".join(
                    f"{d['received']}  {d['method']}  {d['status']}  {d['error']}".rstrip()
                    for d in items
                )
                or "(no deliveries)"
            ),
        )
        return 0

    return _run(args, body)
