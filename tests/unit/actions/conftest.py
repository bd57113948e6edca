"""The template context fixture shared by the template tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.actions import template_builders


@pytest.fixture
def context() -> dict[str, Any]:
    """Prefect's context for a compound firing over ``spider_walked()`` (see template_builders)."""
    return template_builders.build_context()
