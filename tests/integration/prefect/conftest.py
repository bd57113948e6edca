from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.executors.executor_process import ExecutorProcess
from tests.integration.prefect.prefect_server import PrefectApi, PrefectServer, ensure_prefect


@pytest.fixture(scope="session")
def prefect_command() -> Path:
    """The test venv's ``prefect`` command; the tests skip, saying why, if it cannot install."""
    prefect, why = ensure_prefect()
    if prefect is None:
        print(f"SKIPPED Prefect integration tests: {why}")
        pytest.skip(why)
    return prefect


@pytest.fixture(scope="module")
def prefect_server(
    prefect_command: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[PrefectServer]:
    """One real Prefect server (SQLite) shared by a test module.

    API only, unless the module sets ``PREFECT_EVENTS = True``: then the event persister runs too,
    so that the module can read the events Prefect emits.
    """
    events = bool(getattr(request.module, "PREFECT_EVENTS", False))
    server = PrefectServer(prefect_command, tmp_path_factory.mktemp("prefect-home"), events=events)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def prefect_api(prefect_server: PrefectServer) -> Iterator[PrefectApi]:
    api = PrefectApi(prefect_server.api_url)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="module")
def prefect_executor(
    prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExecutorProcess]:
    """A real ``automations executor prefect --prefect-api-url ...`` shared by a test module."""
    proc = ExecutorProcess(
        "prefect",
        tmp_path_factory.mktemp("prefect-executor"),
        args=("--prefect-api-url", prefect_server.api_url),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
