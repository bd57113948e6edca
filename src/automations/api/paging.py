"""``page_size`` of the List methods, as the protos document it: 0 is the default, at most 1000."""

from __future__ import annotations

from automations.domain import errors

MAX_PAGE_SIZE = 1000
"""The most items one List call returns; larger requested sizes are treated as this."""


def page_size(requested: int) -> int:
    """Returns the page size to ask the store for: 0 (its default) or at most ``MAX_PAGE_SIZE``.

    Raises:
        errors.InvalidArgument: On ``page_size`` if negative.
    """
    if requested < 0:
        raise errors.InvalidArgument("page_size", "must be >= 0")
    return min(requested, MAX_PAGE_SIZE)
