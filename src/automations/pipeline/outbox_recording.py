"""The outbox on the writer: recording outcomes, claiming due invocations, release and redrive.

The dispatcher reaches these through ``pipeline.outbox.OutboxGateway``; each runs in one writer
transaction. Recording an outcome also applies an engine-internal action's effect (pause- /
resume-automation) and publishes ``prefect.automation.action.executed`` / ``.failed`` (and an
``emit-event`` action's event) through the cascade, all in that transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from automations.actions import outcomes, planning, settling
from automations.domain import automations, invocations
from automations.pipeline import automation_changes as changes_
from automations.pipeline import cascade as cascade_
from automations.store import database as database_
from automations.store import firings_repo, outbox_repo


class EnablingChanges(Protocol):
    """What settling needs of the automation changes: pause or resume one in a transaction."""

    def set_enabled_in(
        self,
        conn: Any,
        automation_id: str,
        enabled: bool,
        now: float,
        *,
        depth: int = 0,
        origin: str = "",
    ) -> automations.Automation:
        """Pauses or resumes ``automation_id`` in ``conn``'s transaction; returns it."""
        ...


def finish_current(
    conn: Any, results: Sequence[outcomes.Outcome], now: float, changes: EnablingChanges
) -> list[planning.Caused]:
    """Finishes the invocations whose claim is still current; returns the events settling made.

    Those are action events and the changes of pause/resume actions.

    An outcome whose claim is no longer current (its lease ended and the invocation was claimed
    again, in a cluster also by another replica) is dropped: the newer attempt records its own.
    """
    current = outbox_repo.running_attempts(conn, [outcome.job.invocation.id for outcome in results])
    finishes: list[invocations.Finish] = []
    derived: list[planning.Caused] = []
    for outcome in results:
        invocation = outcome.job.invocation
        if current.pop(invocation.id, None) != invocation.attempts:
            continue
        finish, made = settling.settle(
            outcome,
            now=now,
            set_enabled=lambda target, enabled, depth, origin: changes.set_enabled_in(
                conn, target, enabled, now, depth=depth, origin=origin
            ),
        )
        finishes.append(finish)
        derived.extend(made)
    outbox_repo.finish_many(conn, finishes, now=now)
    return derived


class OutboxRecorder:
    """The writer's side of the outbox (writer thread only).

    Args:
        database: The database.
        cascade: Where recorded outcomes' lifecycle events run.
        changes: Applies pause- / resume-automation effects.
        clock: Wall clock, seconds since the epoch.
    """

    def __init__(
        self,
        database: database_.Database,
        cascade: cascade_.Cascade,
        changes: changes_.AutomationChanges,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._cascade = cascade
        self._changes = changes
        self._clock = clock

    def record(self, results: Sequence[outcomes.Outcome]) -> None:
        """Records the dispatcher's outcomes in one transaction.

        An outcome whose claim is no longer current (its lease ended and the invocation was
        claimed again) is dropped: the newer attempt records its own.
        """
        with self._cascade.transaction(self._database) as conn:
            now = self._clock()
            derived = finish_current(conn, results, now, self._changes)
            self._cascade.feed(conn, derived, now)

    def claim(self, limit: int) -> list[planning.Job]:
        """Claims due invocations and loads their firings (for the dispatcher's poller)."""
        now = self._clock()
        with self._database.write() as conn:
            claimed = outbox_repo.claim_due(conn, now, limit, lease=self._cascade.lease)
            by_id = firings_repo.get_many(conn, {i.firing_id for i in claimed})
        return [planning.Job(invocation, by_id.get(invocation.firing_id)) for invocation in claimed]

    def release_running(self) -> int:
        """Makes the previous run's in-flight invocations due now."""
        with self._database.write() as conn:
            return outbox_repo.release_running(conn, self._clock())

    def redrive(self, invocation_id: str) -> invocations.Invocation:
        """Puts a failed or dead-lettered invocation back to pending, due now.

        Raises:
            errors.NotFound: Unknown invocation.
            errors.FailedPrecondition: It is neither failed nor dead-lettered.
        """
        with self._database.write() as conn:
            return outbox_repo.redrive_one(conn, invocation_id, now=self._clock())
