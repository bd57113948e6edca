"""The outbox: idempotent insert, leased claims, fenced outcomes, retry, dead letter, redrive."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from automations.domain import errors
from automations.domain.invocations import Finish, InvocationStatus
from automations.store import outbox_repo, tables
from automations.store.database import Database
from tests.factories import invocation


def finish_current(
    conn, finishes: list[Finish], *, claims: dict[str, int], now: float
) -> list[str]:
    """Records outcomes as the engine does: only for claims that are still current."""
    current = outbox_repo.running_attempts(conn, [f.id for f in finishes])
    kept = [f for f in finishes if current.get(f.id) == claims[f.id]]
    outbox_repo.finish_many(conn, kept, now=now)
    return [f.id for f in kept]


def test_insert_skips_repeated_ids_and_idempotency_keys(db: Database) -> None:
    same_key = dataclasses.replace(invocation(1), id="other")
    with db.write() as conn:
        outbox_repo.add_many(conn, [invocation(1), invocation(2)])
        outbox_repo.add_many(conn, [invocation(1), same_key, invocation(3)])
    with db.read() as conn:
        assert outbox_repo.get(conn, "i1") == invocation(1)
        assert [i.id for i in outbox_repo.list_page(conn)[0]] == ["i1", "i2", "i3"]
        with pytest.raises(errors.NotFound):
            outbox_repo.get(conn, "other")


def test_claim_takes_due_rows_earliest_first_and_leases_them(db: Database) -> None:
    with db.write() as conn:
        outbox_repo.add_many(
            conn, [invocation(1, due=30.0), invocation(2, due=10.0), invocation(3, due=99.0)]
        )
        claimed = outbox_repo.claim_due(conn, now=50.0, limit=10, lease=20.0)
        assert [c.id for c in claimed] == ["i2", "i1"]
        assert all(
            (c.status, c.attempts, c.next_attempt_at) == ("running", 1, 70.0) for c in claimed
        )
        assert outbox_repo.claim_due(conn, now=60.0, limit=10) == []  # leased
        reclaimed = outbox_repo.claim_due(conn, now=70.0, limit=1, lease=20.0)  # lease expired
        assert [(c.id, c.attempts) for c in reclaimed] == [("i1", 2)]  # ties: by id


def test_outcomes_apply_only_to_the_current_claim(db: Database) -> None:
    done = Finish("i1", InvocationStatus.SUCCEEDED, result={"ok": True})
    with db.write() as conn:
        outbox_repo.add_many(conn, [invocation(1)])
        first = outbox_repo.claim_due(conn, now=10.0, limit=1, lease=5.0)[0]
        second = outbox_repo.claim_due(conn, now=20.0, limit=1, lease=5.0)[0]  # took over
        assert finish_current(conn, [done], claims={"i1": first.attempts}, now=21.0) == []
        assert finish_current(conn, [done], claims={"i1": second.attempts}, now=21.0) == ["i1"]
        late = Finish("i1", InvocationStatus.FAILED, error="late")
        outbox_repo.finish_many(conn, [late], now=22.0)  # not running any more: left alone
        stored = outbox_repo.get(conn, "i1")
    assert (stored.status, stored.result, stored.attempts) == ("succeeded", {"ok": True}, 2)
    assert stored.status is InvocationStatus.SUCCEEDED


def test_retry_then_dead_letter_then_redrive(db: Database) -> None:
    with db.write() as conn:
        outbox_repo.add_many(conn, [invocation(1), invocation(2)])
        outbox_repo.claim_due(conn, now=10.0, limit=2)
        outbox_repo.finish_many(
            conn,
            [
                Finish("i1", InvocationStatus.PENDING, error="503", next_attempt_at=15.0),
                Finish("i2", InvocationStatus.FAILED, error="400 bad request"),
            ],
            now=11.0,
        )
        assert outbox_repo.claim_due(conn, now=14.0, limit=5) == []
        retried = outbox_repo.claim_due(conn, now=15.0, limit=5)
        assert [(r.id, r.attempts, r.last_error) for r in retried] == [("i1", 2, "503")]
        outbox_repo.finish_many(
            conn, [Finish("i1", InvocationStatus.DEAD_LETTER, error="gave up")], now=16.0
        )
        statuses = {i.id: i.status for i in outbox_repo.list_page(conn)[0]}
        assert statuses == {"i1": "dead_letter", "i2": "failed"}
        assert outbox_repo.redrive(conn, now=30.0) == 1
        assert outbox_repo.redrive(conn, now=30.0, ids=["i2"], statuses=["failed"]) == 1
        again = outbox_repo.claim_due(conn, now=30.0, limit=5)
    assert sorted((r.id, r.attempts) for r in again) == [("i1", 1), ("i2", 1)]


def test_redrive_refuses_live_statuses(db: Database) -> None:
    with db.write() as conn, pytest.raises(errors.InvalidArgument):
        outbox_repo.redrive(conn, now=1.0, statuses=["pending"])


def test_list_pages_in_creation_order_with_filters(db: Database) -> None:
    with db.write() as conn:
        outbox_repo.add_many(
            conn, [invocation(i, automation_id="a1" if i < 5 else "a2") for i in range(8)]
        )
        outbox_repo.claim_due(conn, now=10.0, limit=3)
    seen: list[str] = []
    token = ""
    with db.read() as conn:
        while True:
            page, token = outbox_repo.list_page(conn, page_size=3, page_token=token)
            seen.extend(i.id for i in page)
            if not token:
                break
        running, _ = outbox_repo.list_page(conn, status="running")
        a2_pending, _ = outbox_repo.list_page(conn, status=["pending"], automation_id="a2")
    assert seen == [f"i{i}" for i in range(8)]
    assert [i.id for i in running] == ["i0", "i1", "i2"]
    assert [i.id for i in a2_pending] == ["i5", "i6", "i7"]


def test_purge_keeps_dead_letters_and_live_rows(db: Database) -> None:
    with db.write() as conn:
        outbox_repo.add_many(conn, [invocation(i) for i in range(3)])
        outbox_repo.claim_due(conn, now=10.0, limit=3)
        outbox_repo.finish_many(
            conn,
            [
                Finish("i0", InvocationStatus.SUCCEEDED),
                Finish("i1", InvocationStatus.DEAD_LETTER, error="x"),
            ],
            now=11.0,
        )
        assert outbox_repo.purge(conn, 100.0) == 1
        assert sorted(i.id for i in outbox_repo.list_page(conn)[0]) == ["i1", "i2"]


def test_duplicates_within_one_insert_keep_the_first(db: Database) -> None:
    second = dataclasses.replace(invocation(1), action_index=7)
    with db.write() as conn:
        outbox_repo.add_many(conn, [invocation(1), invocation(2), second])
    with db.read() as conn:
        assert outbox_repo.get(conn, "i1") == invocation(1)


def test_release_running_makes_in_flight_invocations_due_again(db: Database) -> None:
    with db.write() as conn:
        outbox_repo.add_many(conn, [invocation(1), invocation(2, due=500.0)])
        outbox_repo.claim_due(conn, now=10.0, limit=5, lease=60.0)
        assert outbox_repo.release_running(conn, 20.0) == 1
        again = outbox_repo.claim_due(conn, now=20.0, limit=5)
    assert [(i.id, i.attempts) for i in again] == [("i1", 2)]


def test_requests_written_before_the_typed_request_still_read(db: Database) -> None:
    """A chain-cut row of the first release kept only the action and the automation."""
    with db.write() as conn:
        outbox_repo.add_many(conn, [invocation(1)])
        old = b'{"action": {"type": "call-webhook", "url": "http://x"}, "automation": {"id": "a1"}}'
        table = tables.action_invocations
        conn.execute(sa.update(table).where(table.c.id == "i1").values(request=old))
    with db.read() as conn:
        stored = outbox_repo.get(conn, "i1").request
    assert (stored.action.type, stored.action.parameters) == ("call-webhook", {"url": "http://x"})
    assert (stored.automation.id, stored.depth, stored.on_trigger) == ("a1", 0, False)
