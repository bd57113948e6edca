"""The command line lifts the soft limit on open files, so 1,024 calls in flight fit."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from automations.cli import main


@pytest.fixture
def limits() -> Iterator[tuple[int, int]]:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        yield before
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_a_low_soft_limit_is_raised_towards_the_hard_one(limits: tuple[int, int]) -> None:
    _, hard = limits
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    expected = main.OPEN_FILES if hard == resource.RLIM_INFINITY else min(main.OPEN_FILES, hard)
    assert main.raise_open_files_limit() == expected
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (expected, hard)


def test_a_soft_limit_already_high_enough_is_left_alone(limits: tuple[int, int]) -> None:
    _, hard = limits
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    main.raise_open_files_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
