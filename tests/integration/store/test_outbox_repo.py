"""The outbox: idempotent insert, leased claims, fenced outcomes, retry, dead letter, redrive."""

from __future__ import annotations

import pytest

from automations.domain import errors
from automations.store import outbox_repo
from automations.store.database import Database
from automations.store.outbox_repo import Invocation

pytestmark = pytest.mark.integration


def invocation(n: int, *, due: float = 10.0, automation_id: str = "a1") -> Invocation:
    return Invocation(
        id=f"i{n}",
        automation_id=automation_id,
        firing_id=f"f{n}",
        action_index=0,
        action_type="webhook",
        idempotency_key=f"a1/f{n}/0",
        request={"url": "http://x", "n": n},
        next_attempt_at=due,
        created=float(n),
        updated=float(n),
    )


def test_insert_skips_repeated_ids_and_idempotency_keys(db: Database) -> None:
    with db.write() as conn:
        assert outbox_repo.insert_many(conn, [invocation(1), invocation(2)]) == ["i1", "i2"]
        same_key = Invocation(
            id="other",
            automation_id="a1",
            firing_id="f1",
            action_index=0,
            action_type="webhook",
            idempotency_key="a1/f1/0",
            request={},
        )
        assert outbox_repo.insert_many(conn, [invocation(1), same_key, invocation(3)]) == ["i3"]
    with db.read() as conn:
        assert outbox_repo.get(conn, "i1") == invocation(1)
        with pytest.raises(errors.NotFound):
            outbox_repo.get(conn, "other")


def test_claim_takes_due_rows_earliest_first_and_leases_them(db: Database) -> None:
    with db.write() as conn:
        outbox_repo.insert_many(
            conn, [invocation(1, due=30.0), invocation(2, due=10.0), invocation(3, due=99.0)]
        )
        claimed = outbox_repo.claim_due(conn, now=50.0, limit=10, lease=20.0)
        assert [c.id for c in claimed] == ["i2", "i1"]
        assert all(
            (c.status, c.attempts, c.next_attempt_at) == ("running", 1, 70.0) for c in claimed
        )
        assert outbox_repo.claim_due(conn, now=60.0, limit=10) == []  # leased
        assert outbox_repo.next_due(conn) == 70.0
        reclaimed = outbox_repo.claim_due(conn, now=70.0, limit=1, lease=20.0)  # lease expired
        assert [(c.id, c.attempts) for c in reclaimed] == [("i1", 2)]  # ties: by id


def test_outcomes_apply_only_to_the_current_claim(db: Database) -> None:
    with db.write() as conn:
        outbox_repo.insert_many(conn, [invocation(1)])
        first = outbox_repo.claim_due(conn, now=10.0, limit=1, lease=5.0)[0]
        second = outbox_repo.claim_due(conn, now=20.0, limit=1, lease=5.0)[0]  # took over
        assert not outbox_repo.mark_succeeded(conn, "i1", now=21.0, attempt=first.attempts)
        assert outbox_repo.mark_succeeded(
            conn, "i1", now=21.0, result={"ok": True}, attempt=second.attempts
        )
        assert not outbox_repo.mark_failed(conn, "i1", now=22.0, error="late")  # not running
        done = outbox_repo.get(conn, "i1")
    assert (done.status, done.result, done.attempts) == ("succeeded", {"ok": True}, 2)


def test_retry_then_dead_letter_then_redrive(db: Database) -> None:
    with db.write() as conn:
        outbox_repo.insert_many(conn, [invocation(1), invocation(2)])
        outbox_repo.claim_due(conn, now=10.0, limit=2)
        assert outbox_repo.mark_retry(conn, "i1", now=11.0, next_attempt_at=15.0, error="503")
        assert outbox_repo.mark_failed(conn, "i2", now=11.0, error="400 bad request")
        assert outbox_repo.claim_due(conn, now=14.0, limit=5) == []
        retried = outbox_repo.claim_due(conn, now=15.0, limit=5)
        assert [(r.id, r.attempts, r.last_error) for r in retried] == [("i1", 2, "503")]
        assert outbox_repo.mark_dead_letter(conn, "i1", now=16.0, error="gave up")
        assert outbox_repo.count_by_status(conn) == {
            "pending": 0,
            "running": 0,
            "succeeded": 0,
            "failed": 1,
            "dead_letter": 1,
        }
        assert outbox_repo.redrive(conn, now=30.0) == 1
        assert outbox_repo.redrive(conn, now=30.0, ids=["i2"], statuses=["failed"]) == 1
        again = outbox_repo.claim_due(conn, now=30.0, limit=5)
    assert sorted((r.id, r.attempts) for r in again) == [("i1", 1), ("i2", 1)]


def test_redrive_refuses_live_statuses(db: Database) -> None:
    with db.write() as conn, pytest.raises(errors.InvalidArgument):
        outbox_repo.redrive(conn, now=1.0, statuses=["pending"])


def test_list_pages_in_creation_order_with_filters(db: Database) -> None:
    with db.write() as conn:
        outbox_repo.insert_many(
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
        outbox_repo.insert_many(conn, [invocation(i) for i in range(3)])
        outbox_repo.claim_due(conn, now=10.0, limit=3)
        outbox_repo.mark_succeeded(conn, "i0", now=11.0)
        outbox_repo.mark_dead_letter(conn, "i1", now=11.0, error="x")
        assert outbox_repo.purge(conn, 100.0) == 1
        assert sorted(i.id for i in outbox_repo.list_page(conn)[0]) == ["i1", "i2"]


def test_duplicates_within_one_insert_keep_the_first(db: Database) -> None:
    with db.write() as conn:
        assert outbox_repo.insert_many(conn, [invocation(1), invocation(2), invocation(1)]) == [
            "i1",
            "i2",
        ]
        assert outbox_repo.get(conn, "i1") == invocation(1)
