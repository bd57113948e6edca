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


def _go_example(example: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clients/go/examples/<example> built offline, or the test is skipped saying why."""
    reason = toolchains.ensure_go()
    if reason is not None:
        print(f"skipping Go client test: {reason}")
        pytest.skip(reason)
    binary = tmp_path_factory.mktemp("go") / example
    try:
        toolchains.build_go_example(example, binary)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"go build failed:\n{exc.stderr.decode(errors='replace')}")
    return binary


@pytest.fixture(scope="session")
def go_quickstart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go quickstart built offline, or the test is skipped saying why."""
    return _go_example("quickstart", tmp_path_factory)


@pytest.fixture(scope="session")
def go_metric_automations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go metric automations example built offline, or the test is skipped saying why."""
    return _go_example("metricautomations", tmp_path_factory)
