"""Process-wide interpreter tuning while the engine serves, in one place, restored on exit.

Two knobs, each with a setting to turn it off:

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

:func:`tuned` applies them for the duration of a ``with`` block and puts the interpreter back as
it found it, so an engine served inside a test process or an embedding program leaves no trace.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import sys
from collections.abc import Iterator

GC_THRESHOLDS = (10_000, 20, 20)
"""The collector's thresholds while serving (Python's default: 700, 10, 10)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Tuning:
    """What to tune.

    Attributes:
        switch_interval: The GIL switch interval in seconds; 0 leaves the interpreter's own.
        gc: Freeze the objects alive at start and collect young objects less often.
    """

    switch_interval: float = 0.001
    gc: bool = True


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
    try:
        yield
    finally:
        sys.setswitchinterval(saved_interval)
        if tuning.gc:
            gc.set_threshold(*saved_thresholds)
            gc.unfreeze()
