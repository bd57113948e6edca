"""A commit's callers are answered before the invocations it planned go to the dispatcher.

Handing invocations over may wait for the event loop (``DispatchSettings.handoff_wait``); an
acknowledgement must not wait behind it (it did: at 1,000 webhook requests/s, each firing an
automation, every 204 waited for the event loop to take the firing's invocation first).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from automations.actions import planning
from automations.pipeline import cascade, writer
from tests.unit.pipeline.test_single_writer import FakeBackend, ev


class HandingBackend(FakeBackend):
    """Hands on what a commit set off only when the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.handing = threading.Event()
        self.release = threading.Event()

    def answered(self) -> None:
        self.handing.set()
        self.release.wait(60)


async def test_a_caller_is_answered_while_its_commit_is_still_being_handed_on() -> None:
    backend = HandingBackend()
    w = writer.Writer(backend)
    w.start()
    try:
        assert await asyncio.wait_for(w.publish([ev(1)]), 10) == [True]
        assert backend.handing.wait(10)
    finally:
        backend.release.set()
        w.stop()


class FakeDatabase:
    @contextlib.contextmanager
    def write(self) -> Iterator[Any]:
        yield None


def test_a_deferred_transaction_hands_its_invocations_over_only_when_told() -> None:
    handed: list[list[planning.Job]] = []
    runs = cascade.Cascade(engine=None)  # type: ignore[arg-type]  # no step is run here
    runs.attach_dispatcher(handed.append, lambda: 10)
    job = planning.Job(invocation=None, firing=None)  # type: ignore[arg-type]
    with runs.transaction(FakeDatabase(), defer=True):  # type: ignore[arg-type]
        runs._jobs.append(job)
    assert handed == []
    runs.hand_off()
    assert handed == [[job]]
    runs.hand_off()
    assert handed == [[job]]
    with runs.transaction(FakeDatabase()):  # type: ignore[arg-type]
        runs._jobs.append(job)
    assert handed == [[job], [job]]
