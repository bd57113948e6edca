"""Process-wide interpreter tuning while the engine serves, in one place, restored on exit.

Three knobs, each with a setting to turn it off:

* **The GIL switch interval** (``gil_switch_interval_seconds``, default 1 ms; Python's own is
  5 ms). The writer thread releases the GIL for every SQLite statement and must take it back from
  the event loop, which holds it while it decodes requests; a thread asking for the GIL waits up
  to one interval. At 5 ms the writer spent a third of each group commit waiting. Measured side by
  side (``python -m bench ingest``, 3 runs each): 1 ms gave +6-7 % events/s; 2 ms and 0.5 ms were
  no better, 0.2 ms worse. 0 keeps Python's default.
* **The cyclic garbage collector** (``gc_tuning``, default on). What start-up loads (automations,
  the rete, buckets) lives as long as the process: it is frozen out of the collector's sight once
  loaded, and young objects are collected less often (threshold 10,000 instead of 700). Full
  collections over the loaded state were 15-45 ms pauses in the dispatch latency benchmark.

* **Returning freed memory to the system** (``memory_trim_seconds``, default every 10 s).
  Memory that gRPC's core and protobuf freed (a refused 60 MB request, a burst of large batches)
  stays in the C allocator's heaps, and the process's resident size stays at its peak: measured,
  24 refused 60 MB requests left 300 MB resident with not one Python object alive. A thread
  calls glibc's ``malloc_trim`` every interval (the call releases the GIL), which gave it back
  (to 110 MB). Off where the C library has no ``malloc_trim``.

  Trimming only gives back the top of a heap, and glibc's *dynamic* mmap threshold moved large
  buffers into the heaps: once a 12 MB buffer mmapped on its own is freed, glibc raises the
  threshold to 12 MB, and later ones come from the heap, where the small allocations around them
  keep the pages from being trimmed. 48 refused 12 MB requests left 70-100 MB resident that way
  (on a busy machine; sometimes none on an idle one). With trimming on, the threshold is fixed at
  :data:`MMAP_THRESHOLD` (``mallopt``; fixing it turns the dynamic adjustment off), so every
  large buffer is mapped on its own and unmapped when freed: the same burst left under 2 MB.
  glibc has no way back to the dynamic threshold, so this one setting outlives the block.

:func:`tuned` applies them for the duration of a ``with`` block and puts the interpreter back as
it found it, so an engine served inside a test process or an embedding program leaves no trace.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import gc
import logging
import sys
import threading
from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)

MMAP_THRESHOLD = 1 << 20
"""Allocations from this size up get their own mapping, returned to the system when freed."""
_M_MMAP_THRESHOLD = -3
"""glibc's ``mallopt`` parameter number for the mmap threshold."""

GC_THRESHOLDS = (10_000, 20, 20)
"""The collector's thresholds while serving (Python's default: 700, 10, 10)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Tuning:
    """What to tune.

    Attributes:
        switch_interval: The GIL switch interval in seconds; 0 leaves the interpreter's own.
        gc: Freeze the objects alive at start and collect young objects less often.
        memory_trim_seconds: Seconds between two returns of freed memory to the system; 0 never.
    """

    switch_interval: float = 0.001
    gc: bool = True
    memory_trim_seconds: float = 10.0


def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's ``malloc_trim`` (glibc), or None where it has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def _fix_mmap_threshold() -> bool:
    """Fixes glibc's mmap threshold at :data:`MMAP_THRESHOLD`; False where that is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def _trim_every(interval: float, stop: threading.Event, trim: Callable[[int], int]) -> None:
    while not stop.wait(interval):
        trim(0)


@contextlib.contextmanager
def tuned(tuning: Tuning) -> Iterator[None]:
    """Applies ``tuning`` (call it once start-up has loaded its state) and undoes it on exit."""
    saved_interval = sys.getswitchinterval()
    saved_thresholds = gc.get_threshold()
    if tuning.gc:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
    if tuning.switch_interval > 0:
        sys.setswitchinterval(tuning.switch_interval)
    stop = threading.Event()
    trimmer: threading.Thread | None = None
    trim = _malloc_trim() if tuning.memory_trim_seconds > 0 else None
    if trim is not None:
        _fix_mmap_threshold()
        trimmer = threading.Thread(
            target=_trim_every,
            args=(tuning.memory_trim_seconds, stop, trim),
            name="automations-memory-trim",
            daemon=True,
        )
        trimmer.start()
    elif tuning.memory_trim_seconds > 0:
        logger.info("no malloc_trim in this C library: freed memory is not trimmed")
    try:
        yield
    finally:
        stop.set()
        if trimmer is not None:
            trimmer.join(5)
        sys.setswitchinterval(saved_interval)
        if tuning.gc:
            gc.set_threshold(*saved_thresholds)
            gc.unfreeze()
