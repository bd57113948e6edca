"""``make lint``: no hand-written module over 500 lines in src, bench, tests or scripts (generated code and migrations aside).

A module that grows past the limit holds more than one concern: split it along them.
"""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 500
REPO = Path(__file__).resolve().parent.parent
TREES = ("src/automations", "bench", "tests", "scripts")
"""Where the hand-written Python lives: the product, its benchmarks, its tests, its scripts."""
EXEMPT = (
    "src/automations/v1/",
    "src/automations/executor/v1/",
    "src/automations/store/migrations/",
)
"""Generated code and migrations."""


def oversized() -> list[tuple[int, Path]]:
    found = []
    paths = sorted(path for tree in TREES for path in (REPO / tree).rglob("*.py"))
    for path in paths:
        relative = path.relative_to(REPO).as_posix()
        if relative.startswith(EXEMPT) or "/node_modules/" in relative:
            continue
        lines = len(path.read_text().splitlines())
        if lines > LIMIT:
            found.append((lines, path))
    return found


def main() -> int:
    found = oversized()
    for lines, path in found:
        print(f"{path.relative_to(REPO)}: {lines} lines (at most {LIMIT})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
