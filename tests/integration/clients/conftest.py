from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.clients import toolchains


@pytest.fixture(scope="session")
def node_ready() -> None:
    """clients/node with its node_modules, or the test is skipped saying why."""
    reason = toolchains.ensure_node()
    if reason is not None:
        print(f"skipping Node client test: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def go_quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go quickstart built offline, or the test is skipped saying why."""
    reason = toolchains.ensure_go()
    if reason is not None:
        print(f"skipping Go client test: {reason}")
        pytest.skip(reason)
    binary = tmp_path_factory.mktemp("go") / "quickstart"
    try:
        toolchains.build_go_quickstart(binary)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"go build failed:\n{exc.stderr.decode(errors='replace')}")
    return binary
