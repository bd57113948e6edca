"""JSON encoding of the store's blob columns (orjson, with fallbacks for domain containers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


def default(value: object) -> Any:
    """Serializes what orjson refuses: other mappings as dicts, other sequences and sets as lists."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Encodes ``value`` as UTF-8 JSON; bytes are taken as already encoded."""
    return value if isinstance(value, bytes) else orjson.dumps(value, default=default)
