from __future__ import annotations

import pytest

from automations import executor
from automations.executors import webhook


def test_sensitive_response_headers_are_removed() -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer x"),
        ("Proxy-Authorization", "Basic y"),
        ("Set-Cookie", "session=1"),
        ("traceparent", "00-abc"),
        ("Via", "1.1 proxy"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("x-forwarded-proto", "https"),
        ("X-B3-TraceId", "1"),
        ("x-envoy-upstream-service-time", "3"),
        ("X-Prefect-Thing", "z"),
        ("X-Cloud-Trace-Context", "t"),
        ("X-Request-Id", "r1"),
    ]
    assert webhook.redact_headers(headers) == {
        "content-type": "application/json",
        "x-request-id": "r1",
    }


def test_repeated_response_headers_are_joined() -> None:
    assert webhook.redact_headers([("Vary", "Accept"), ("vary", "Origin")]) == {
        "vary": "Accept, Origin"
    }


def test_a_string_payload_is_sent_as_it_is() -> None:
    assert webhook.render_payload('{"a": 1}') == '{"a": 1}'
    assert webhook.render_payload(None) == ""


def test_a_dict_payload_is_json_dumped_with_indent_2_as_prefect_does() -> None:
    assert (
        webhook.render_payload({"flow": "x", "count": 3.0}) == '{\n  "count": 3,\n  "flow": "x"\n}'
    )
    assert webhook.render_payload([1.0, "a"]) == '[\n  1,\n  "a"\n]'


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (None, "WEBHOOK_URL_MISSING"),
        ("", "WEBHOOK_URL_MISSING"),
        ("ftp://example.com/x", "WEBHOOK_URL_SCHEME_UNSUPPORTED"),
        ("file:///etc/passwd", "WEBHOOK_URL_SCHEME_UNSUPPORTED"),
        ("http://", "WEBHOOK_URL_INVALID"),
    ],
)
def test_a_url_that_cannot_be_called_is_an_invalid_argument(url: object, reason: str) -> None:
    with pytest.raises(executor.ActionError) as info:
        webhook._url(url)
    assert info.value.reason == reason


def test_the_idempotency_key_header_replaces_one_given_in_the_action() -> None:
    headers = webhook._headers({"idempotency-key": "mine", "X-Token": "t", "X-N": 2.0}, "key-1")
    assert headers["Idempotency-Key"] == "key-1"
    assert "idempotency-key" not in headers
    assert headers["X-N"] == "2"
    assert headers["User-Agent"] == webhook.USER_AGENT
