"""W1 beside metric automations counted in instructions: a figure the machine's load cannot move.

python -m bench.metric_instructions [--events N] [--warm W]

The writer's work for W1 (an EngineBackend on a SQLite file, as the served engine's writer runs
it: append, evaluate, plan, commit; 1,000-event commits) with W1's 20 event automations, and with
the 20 metric automations of ``bench.metric_triggers`` beside them, run under valgrind's callgrind,
which counts the instructions executed, only while the ``N`` measured events are committed (after
``W`` events of warm-up; a tiny library compiled here with gcc from valgrind's own header turns
the counting on and off around them). On a shared machine, where events/s swing with
the other processes, the ratio of the two counts is the repeatable form of the rate ratio for the
writer's share of the work; the event loop's decoding of requests, the same in both, is not in it.
Needs ``valgrind`` and ``gcc`` (Debian's packages); without them, says so and exits.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import harness

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
_TOGGLE_C = """
#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_STOP_INSTRUMENTATION; }
"""


def _child(with_metrics: bool, events_n: int, warm: int) -> None:
    """The measured program: W1 through an EngineBackend on SQLite, ``events_n`` counted."""
    from automations import process_tuning
    from automations.domain import prefect_json
    from automations.pipeline import backend as backend_
    from automations.store import database
    from bench import metric_triggers, workloads

    size = 1000
    with (
        tempfile.TemporaryDirectory(prefix="automations-bench-") as tmp,
        process_tuning.tuned(process_tuning.Tuning()),
    ):
        db = database.Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        backend = backend_.EngineBackend(db, engine_factory=backend_.rete_engine)
        backend.start()
        now = 1_893_456_000.0
        loaded = workloads.w1_automations()
        if with_metrics:
            loaded += metric_triggers.metric_automations()
        for k, data in enumerate(loaded):
            backend.changes.create(
                prefect_json.parse_automation(data, automation_id=f"a{k}", created=now, updated=now)
            )
        batch = workloads.w1_events(warm + events_n, now)
        toggle = ctypes.CDLL(os.environ["AUTOMATIONS_BENCH_TOGGLE"])
        for i in range(0, warm + events_n, size):
            if i == warm:
                toggle.start()
            backend.commit_events(batch[i : i + size], now + i / 1e6)
            backend.answered()
        toggle.stop()
        backend.close()
        backend.dispose()


def _instructions(with_metrics: bool, events_n: int, warm: int, toggle: Path) -> int:
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--collect-atstart=no",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "bench.metric_instructions",
            "--child",
            "with" if with_metrics else "without",
            "--events",
            str(events_n),
            "--warm",
            str(warm),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=harness.ROOT,
        env={**harness.source_env(None), "AUTOMATIONS_BENCH_TOGGLE": str(toggle)},
    )
    found = _REFS.search(out.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {out.stderr[-500:]}")
    return int(found.group(1).replace(",", ""))


def run(events_n: int = 5000, warm: int = 4000) -> dict[str, float] | None:
    """Instructions per W1 event without and with the metric automations (None: no valgrind)."""
    if shutil.which("valgrind") is None or shutil.which("gcc") is None:
        print("valgrind and gcc are needed (Debian: apt-get install valgrind gcc): not measured")
        return None
    per_event: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="automations-bench-") as tmp:
        source = Path(tmp) / "toggle.c"
        source.write_text(_TOGGLE_C)
        toggle = Path(tmp) / "toggle.so"
        subprocess.run(
            ["gcc", "-O2", "-shared", "-fPIC", "-o", str(toggle), str(source)], check=True
        )
        for label, flag in (("without", False), ("with", True)):
            per_event[label] = _instructions(flag, events_n, warm, toggle) / events_n
    ratio = per_event["without"] / per_event["with"]
    print(
        f"W1 in the writer's code (EngineBackend on SQLite, 1,000-event commits), instructions "
        f"per event: {per_event['without']:,.0f} with its 20 event automations, "
        f"{per_event['with']:,.0f} with the 20 metric automations beside them: the rate they "
        f"allow is {ratio:.1%} of W1's (target >= 90%)"
    )
    return {**per_event, "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metric_instructions")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--warm", type=int, default=4000)
    parser.add_argument("--child", choices=["with", "without"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child == "with", args.events, args.warm)
    else:
        run(args.events, args.warm)


if __name__ == "__main__":
    main()
