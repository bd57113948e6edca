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


class PrefectServers:
    """Real Prefect servers (SQLite), each started when first asked for: API only, or with the
    event services too."""

    def __init__(self, prefect: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._prefect = prefect
        self._tmp = tmp_path_factory
        self._servers: dict[bool, PrefectServer] = {}

    def get(self, *, events: bool) -> PrefectServer:
        if events not in self._servers:
            home = self._tmp.mktemp("prefect-home")
            self._servers[events] = PrefectServer(self._prefect, home, events=events).start()
        return self._servers[events]

    def stop(self) -> None:
        for server in self._servers.values():
            server.stop()


@pytest.fixture(scope="package")
def prefect_servers(
    prefect_command: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServers]:
    """The Prefect servers of this package's tests: a start costs 15-20 s, so modules share them
    (every test makes its own flows, deployments, runs and pools, with unique names)."""
    servers = PrefectServers(prefect_command, tmp_path_factory)
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="module")
def prefect_server(
    prefect_servers: PrefectServers, request: pytest.FixtureRequest
) -> PrefectServer:
    """The Prefect server of a test module.

    API only, unless the module sets ``PREFECT_EVENTS = True``: then the event persister runs too,
    so that the module can read the events Prefect emits.
    """
    return prefect_servers.get(events=bool(getattr(request.module, "PREFECT_EVENTS", False)))


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
