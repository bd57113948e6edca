from __future__ import annotations

from automations.webhooks import requests


def test_headers_are_case_insensitive_and_repeated_ones_joined() -> None:
    headers = requests.Headers.from_asgi([(b"x-a", b"1"), (b"x-a", b"2"), (b"content-type", b"t")])
    assert headers["X-A"] == "1, 2" and headers.get("CONTENT-TYPE") == "t" and "x-A" in headers
    assert headers.get("missing", "d") == "d"


def test_the_context_drops_authorization_and_parses_the_body_best_effort() -> None:
    def context(body: bytes, content_type: str) -> dict:
        headers = requests.Headers([("Content-Type", content_type), ("Authorization", "Bearer t")])
        return requests.context(requests.Request("POST", headers, body, query="a=1&a=2&b="))

    ctx = context(b'{"k": [1]}', "application/json")
    assert ctx["body"] == {"k": [1]} and "authorization" not in ctx["headers"]
    assert ctx["query"] == {"a": "2", "b": ""}
    assert context(b"a=1&a=2&b=x", "application/x-www-form-urlencoded")["body"] == {
        "a": "2",
        "b": "x",
    }
    assert context(b"[1, 2]", "text/plain")["body"] == [1, 2]
    assert context(b"not json", "text/plain")["body"] == "not json"
    assert context(b"", "application/json")["body"] == ""
    assert context(b"\xff", "text/plain")["raw_body"] == "\ufffd"
