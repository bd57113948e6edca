"""Engine-made ids are UUIDv7: unique, valid, and in the order they were made."""

from __future__ import annotations

import time
import uuid

from automations.domain import ids


def test_ids_are_version_7_uuids_in_creation_order() -> None:
    made = [ids.uuid7() for _ in range(20_000)]  # several per millisecond
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    parsed = uuid.UUID(made[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122


def test_the_leading_bits_are_the_unix_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(ids.uuid7()).int >> 80
    assert before <= value <= time.time_ns() // 1_000_000 + 5
