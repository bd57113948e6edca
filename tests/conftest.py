"""The test tiers, set by directory: ``integration`` marks what needs real processes or servers.

Everything under ``tests/integration/`` gets the ``integration`` marker here (no file marks itself),
except in ``tests/integration/store/``: its tests run against SQLite (a temp file) and PostgreSQL,
and only what needs the PostgreSQL server (the ``postgresql`` cases of the ``backend``
parameter, tests asking for ``postgres_url``, modules marked ``postgres``) is ``integration``, and
``postgres`` too. The SQLite cases need no server: they are in the unit tier, so
``make test-unit`` (``-m "not integration"``) runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"
STORE = INTEGRATION / "store"


def _needs_postgres(item: pytest.Item) -> bool:
    return item.get_closest_marker("postgres") is not None or "postgres_url" in getattr(
        item, "fixturenames", ()
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks the integration tier (see the module docstring)."""
    for item in items:
        path = item.path
        if not path.is_relative_to(INTEGRATION):
            continue
        if path.is_relative_to(STORE):
            if not _needs_postgres(item):
                continue
            item.add_marker(pytest.mark.postgres)
        item.add_marker(pytest.mark.integration)
