"""Time-ordered unique ids (UUIDv7, RFC 9562), as Prefect gives its events.

Ids made by the engine (firings, the automation's own events) are keys of B-tree indexes; a
time-ordered id lands at the right edge of the index instead of a random page, which is what makes
appending them cheap (a random UUIDv4 primary key was the largest cost of the event log's writes).
"""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_random = random.Random()
"""The random bits: seeded from ``os.urandom`` (again in a forked child), then drawn without a
system call. ``os.urandom`` per id made the writer thread hand back the GIL once per id, and each
time queue behind the event loop to take it again (~4% of the writer's time in the dispatch
benchmark, two ids per invocation)."""
os.register_at_fork(after_in_child=_random.seed)


def uuid7() -> str:
    """A new UUIDv7 string.

    48 bits of Unix milliseconds, then a 12-bit counter that keeps ids made in the same
    millisecond in order (RFC 9562, method 1), then 62 random bits.
    """
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = _random.getrandbits(10)  # room to count up
        else:
            _counter += 1
            if _counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
    tail = _random.getrandbits(62)
    h = f"{(ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | tail:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
