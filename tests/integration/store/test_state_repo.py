"""Engine state records: upsert (last wins), delete, load grouped, per-automation cleanup."""

from __future__ import annotations

import dataclasses
from typing import Any

from automations.store import state_repo
from automations.store.database import Database


@dataclasses.dataclass(frozen=True)
class Record:
    """Shaped like the engine's StateRecord."""

    automation_id: str
    trigger_id: str
    kind: str
    key: str
    data: Any = None
    due: float | None = None


def test_upsert_inserts_then_replaces_data_and_due(db: Database) -> None:
    with db.write() as conn:
        state_repo.upsert_many(conn, [Record("a", "t", "bucket", "k1", {"count": 1}, 10.0)])
        state_repo.upsert_many(
            conn,
            [
                Record("a", "t", "bucket", "k1", {"count": 2}, None),
                ("a", "t", "bucket", "k2", [1, "x"], 5.5),
            ],
        )
    with db.read() as conn:
        rows = state_repo.load_all(conn)
    assert rows == [
        state_repo.StateRow("a", "t", "bucket", "k1", {"count": 2}, None),
        state_repo.StateRow("a", "t", "bucket", "k2", [1, "x"], 5.5),
    ]


def test_the_last_record_for_a_key_wins_within_one_call(db: Database) -> None:
    with db.write() as conn:
        n = state_repo.upsert_many(
            conn, [Record("a", "t", "k", "x", {"v": 1}), Record("a", "t", "k", "x", {"v": 2})]
        )
    assert n == 1
    with db.read() as conn:
        assert [r.data for r in state_repo.load_all(conn)] == [{"v": 2}]


def test_delete_many_takes_records_or_key_tuples_and_ignores_unknown_keys(db: Database) -> None:
    with db.write() as conn:
        state_repo.upsert_many(conn, [Record("a", "t", "k", str(i), {"i": i}) for i in range(4)])
        state_repo.delete_many(
            conn,
            [
                Record("a", "t", "k", "0"),
                ("a", "t", "k", "1"),
                state_repo.StateKey("a", "t", "k", "9"),
            ],
        )
    with db.read() as conn:
        assert [r.key for r in state_repo.load_all(conn)] == ["2", "3"]


def test_records_load_per_automation_and_are_cleaned_up_with_it(db: Database) -> None:
    records = [
        Record("", "", "clock", "", {"now": 1.0}),
        Record("a", "t1", "bucket", "k", {}, 3.0),
        Record("a", "t2", "bucket", "k", {}, 1.0),
        Record("b", "t1", "bucket", "k", {}, 2.0),
    ]
    with db.write() as conn:
        state_repo.upsert_many(conn, records)
    with db.read() as conn:
        assert sorted({r.automation_id for r in state_repo.load_all(conn)}) == ["", "a", "b"]
        assert [r.trigger_id for r in state_repo.load_automation(conn, "a")] == ["t1", "t2"]
    with db.write() as conn:
        assert state_repo.delete_stale_triggers(conn, "a", {"t2"}) == 1
        assert state_repo.delete_automation(conn, "b") == 1
    with db.read() as conn:
        assert [(r.automation_id, r.trigger_id) for r in state_repo.load_all(conn)] == [
            ("", ""),
            ("a", "t2"),
        ]


def test_pre_encoded_bytes_are_stored_as_json(db: Database) -> None:
    with db.write() as conn:
        state_repo.upsert_many(conn, [("a", "t", "k", "x", b'{"raw":true}', None)])
    with db.read() as conn:
        assert state_repo.load_all(conn)[0].data == {"raw": True}
