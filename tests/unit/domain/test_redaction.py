"""Secrets in URLs and secret-named keys are masked in what the engine writes down."""

from __future__ import annotations

import pytest

from automations.domain import redaction


@pytest.mark.parametrize(
    ("given", "masked"),
    [
        (
            "https://alice:hunter2@example.com/hook?token=abc&x=1",
            "https://alice:****@example.com/hook?token=****&x=****",
        ),
        (
            "https://hooks.slack.com/services/T0000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "https://hooks.slack.com/services/T0000000/B00000000/****",
        ),
        ("json://bob:pw@127.0.0.1:9/hook", "json://bob:****@127.0.0.1:9/****"),
        (
            "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12315544/",
            "tgram://****/****/",
        ),
        ("mailto://user:pass@gmail.com", "mailto://user:****@gmail.com"),
        ("https://example.com:8443/a/b", "https://example.com:8443/a/b"),
        (
            'HTTP Request: POST https://u:p@h/x?key=1 "HTTP/1.1 200 OK"',
            'HTTP Request: POST https://u:****@h/x?key=**** "HTTP/1.1 200 OK"',
        ),
        ("no url here", "no url here"),
    ],
)
def test_every_url_in_a_text_loses_its_secrets(given: str, masked: str) -> None:
    assert redaction.text(given) == masked


def test_secret_named_keys_are_masked_at_any_depth() -> None:
    given = {
        "headers": {"Authorization": "Bearer x", "Content-Type": "application/json"},
        "url": "https://a:b@h/p",
        "nested": [{"api_key": "k", "name": "kept"}],
    }
    assert redaction.value(given) == {
        "headers": {"Authorization": "****", "Content-Type": "application/json"},
        "url": "https://a:****@h/p",
        "nested": [{"api_key": "****", "name": "kept"}],
    }


@pytest.mark.parametrize(
    ("given", "masked"),
    [
        ("sqlite+pysqlite:////tmp/x/automations.db", "sqlite+pysqlite:////tmp/x/automations.db"),
        (
            "postgresql+psycopg://app:pw@db.internal:5432/automations",
            "postgresql+psycopg://app:****@db.internal:5432/automations",
        ),
    ],
)
def test_database_urls_keep_their_path_and_lose_their_password(given: str, masked: str) -> None:
    assert redaction.text(given) == masked
