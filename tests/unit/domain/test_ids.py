"""Engine-made ids are UUIDv7: unique, valid, and in the order they were made."""

from __future__ import annotations

import os
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


def test_a_forked_process_does_not_repeat_the_parents_random_bits() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, to the parent
        os.write(write, ids.uuid7().encode())
        os._exit(0)
    os.close(write)
    parent = ids.uuid7()
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert uuid.UUID(child).int & (2**62 - 1) != uuid.UUID(parent).int & (2**62 - 1)
