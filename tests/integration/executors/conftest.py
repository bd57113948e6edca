from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.executors.executor_process import ExecutorProcess, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def webhook_executor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExecutorProcess]:
    """One real ``automations executor webhook`` (timeout 1 s) shared by a test module."""
    proc = ExecutorProcess("webhook", tmp_path_factory.mktemp("webhook"), args=("--timeout", "1"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
