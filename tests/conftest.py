"""The test tiers, set by directory: ``integration`` marks what needs real processes or servers.

Everything under ``tests/integration/`` gets the ``integration`` marker here (no file marks itself),
except in ``tests/integration/store/``: its tests run against SQLite (a temp file) and PostgreSQL,
and only what needs the PostgreSQL server (the ``postgresql`` cases of the ``backend``
parameter, tests asking for ``postgres_url``, modules marked ``postgres``) is ``integration``, and
``postgres`` too. The SQLite cases need no server: they are in the unit tier, so
``make test-unit`` (``-m "not integration"``) runs them.

A few session fixtures install a toolchain the first time they are used (from a fresh clone, on
whatever test comes first): the tests using them get that installation's time on top of their own
timeout, so that a slow download or a busy machine does not fail the test it happens to land on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"
STORE = INTEGRATION / "store"

INSTALL_SECONDS = {
    "node_ready": 300.0,  # npm ci in clients/node (tests/integration/clients/toolchains.py)
    "prefect_command": 720.0,  # venv + pip install prefect (tests/integration/prefect/prefect_server)
}
"""Fixtures that may install something on first use: the most seconds the installation takes."""


def _needs_postgres(item: pytest.Item) -> bool:
    return item.get_closest_marker("postgres") is not None or "postgres_url" in getattr(
        item, "fixturenames", ()
    )


def _timeout(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.args[0] if marker.args else marker.kwargs.get("timeout")
        if value is not None:
            return float(value)
    return float(item.config.getini("timeout") or 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks the integration tier and lengthens the timeouts of installing tests (see above)."""
    for item in items:
        install = sum(INSTALL_SECONDS.get(name, 0.0) for name in getattr(item, "fixturenames", ()))
        timeout = _timeout(item)
        if install and timeout:
            item.add_marker(pytest.mark.timeout(timeout + install), append=False)
        path = item.path
        if not path.is_relative_to(INTEGRATION):
            continue
        if path.is_relative_to(STORE):
            if not _needs_postgres(item):
                continue
            item.add_marker(pytest.mark.postgres)
        item.add_marker(pytest.mark.integration)
