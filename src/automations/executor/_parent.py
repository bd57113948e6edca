"""Stops a bundled executor when the engine that started it dies.

The engine starts its bundled executors as child processes with ``AUTOMATIONS_PARENT_PID`` set.
Rather than ``PR_SET_PDEATHSIG`` (which fires when the *thread* that forked exits, not the
process), the executor polls once a second: the parent is gone when its pid no longer exists or
when this process has been re-parented away from it.
"""

from __future__ import annotations

import asyncio
import logging
import os

from automations.executor._idempotency import pid_alive

logger = logging.getLogger(__name__)

PARENT_PID_ENV = "AUTOMATIONS_PARENT_PID"
"""The environment variable naming the pid of the process to outlive at most by a second."""

POLL_SECONDS = 1.0
"""How often the parent is checked."""


def parent_pid_from_env() -> int | None:
    """The pid in ``AUTOMATIONS_PARENT_PID``, or None when unset or malformed."""
    value = os.environ.get(PARENT_PID_ENV, "").strip()
    try:
        pid = int(value)
    except ValueError:
        return None
    return pid if pid > 0 else None


def parent_gone(parent_pid: int, started_under: int) -> bool:
    """Whether ``parent_pid`` has died (``started_under`` is this process's ppid at start-up)."""
    if started_under == parent_pid and os.getppid() != parent_pid:
        return True
    return not pid_alive(parent_pid)


async def stop_when_gone(parent_pid: int, stop: asyncio.Event) -> None:
    """Sets ``stop`` once ``parent_pid`` has died."""
    started_under = os.getppid()
    while not stop.is_set():
        if parent_gone(parent_pid, started_under):
            logger.warning("parent process %d is gone: stopping", parent_pid)
            stop.set()
            return
        await asyncio.sleep(POLL_SECONDS)
