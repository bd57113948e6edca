"""Process tuning applies while serving and leaves the interpreter as it found it."""

from __future__ import annotations

import gc
import sys
import threading

from automations import process_tuning


def test_the_switch_interval_and_the_collector_are_restored_on_exit() -> None:
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    with process_tuning.tuned(process_tuning.Tuning(switch_interval=0.002, memory_trim_seconds=0)):
        assert sys.getswitchinterval() == 0.002
        assert gc.get_threshold() == process_tuning.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert sys.getswitchinterval() == interval and gc.get_threshold() == thresholds
    assert gc.get_freeze_count() == 0


def test_memory_is_trimmed_by_a_thread_that_stops_with_the_block() -> None:
    def trimmers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "automations-memory-trim"]

    with process_tuning.tuned(process_tuning.Tuning(gc=False, memory_trim_seconds=0.01)):
        assert len(trimmers()) == 1
    assert trimmers() == []


def test_large_allocations_get_their_own_mapping_where_the_c_library_is_glibc() -> None:
    # mallopt answers 1 when glibc takes the setting; elsewhere there is nothing to fix
    if process_tuning._malloc_trim() is None:
        return
    assert process_tuning._fix_mmap_threshold()
