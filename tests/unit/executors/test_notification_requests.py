from __future__ import annotations

import logging

import pytest

from automations import executor
from automations.executors import notify


def test_urls_come_from_urls_or_url() -> None:
    assert notify._urls({"urls": ["json://a", " json://b "]}) == ["json://a", "json://b"]
    assert notify._urls({"url": "json://a"}) == ["json://a"]
    assert notify._urls({"urls": [], "url": "json://a"}) == ["json://a"]


@pytest.mark.parametrize("params", [{}, {"url": ""}, {"urls": []}, {"urls": [3]}])
def test_no_url_is_an_invalid_argument(params: dict[str, object]) -> None:
    with pytest.raises(executor.ActionError) as info:
        notify._urls(params)
    assert info.value.reason == "NOTIFICATION_URL_MISSING"


def test_the_log_keeps_its_end() -> None:
    log = notify.format_log([("INFO", "x" * 3000), ("WARNING", "the failure")])
    assert len(log) == notify.MAX_LOG_CHARS
    assert log.endswith("WARNING - the failure")


def test_with_apprise_1_the_log_comes_from_log_capture() -> None:
    class OldApprise:
        def notify(self, body: str, title: str) -> bool:
            logging.getLogger("apprise").warning("Connection refused sending to %s", "json")
            return False

    ok, log = notify._send_with_log_capture(OldApprise(), "subject", "body")
    assert not ok
    assert "Connection refused sending to json" in log
