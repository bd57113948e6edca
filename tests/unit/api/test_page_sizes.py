"""``page_size`` of every List method: 0 means the default, negative is refused, 1000 at most."""

from __future__ import annotations

import pytest

from automations.api import paging
from automations.domain import errors


def test_page_sizes_are_capped_at_1000_and_zero_means_the_default() -> None:
    assert [paging.page_size(n) for n in (0, 1, 999, 1000, 1001, 10**9)] == [
        0,
        1,
        999,
        1000,
        1000,
        1000,
    ]


def test_a_negative_page_size_is_refused_naming_the_field() -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        paging.page_size(-1)
    assert caught.value.field == "page_size"
