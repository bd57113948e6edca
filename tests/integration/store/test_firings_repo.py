"""Firing history: stored whole (with its event and children), listed newest first by pages."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa

from automations.domain import errors
from automations.store import firings_repo, tables
from automations.store.database import Database
from tests.factories import firing


def test_a_firing_reads_back_whole_with_its_event_and_children(db: Database) -> None:
    plain, composite = firing("f1"), firing("f2", with_child=True)
    with db.write() as conn:
        firings_repo.insert_many(conn, [plain, composite])
        firings_repo.insert_many(conn, [plain])  # a repeated id is skipped
    with db.read() as conn:
        assert firings_repo.get(conn, "f1") == plain
        assert firings_repo.get(conn, "f2") == composite
        with pytest.raises(errors.NotFound):
            firings_repo.get(conn, "nope")


def test_list_is_newest_first_paged_and_filtered_by_automation(db: Database) -> None:
    items = [
        firing(f"f{i}", automation_id="a1" if i % 2 else "a2", triggered=float(i // 2))
        for i in range(9)
    ]
    with db.write() as conn:
        firings_repo.insert_many(conn, items)
    expected = [f.id for f in sorted(items, key=lambda f: (f.triggered, f.id), reverse=True)]
    seen: list[str] = []
    token = ""
    with db.read() as conn:
        while True:
            page, token = firings_repo.list_page(conn, page_size=2, page_token=token)
            seen.extend(f.id for f in page)
            if not token:
                break
        only_a1, _ = firings_repo.list_page(conn, automation_id="a1")
    assert seen == expected
    assert [f.id for f in only_a1] == [i for i in expected if int(i[1:]) % 2]


def test_purge_drops_old_firings(db: Database) -> None:
    with db.write() as conn:
        firings_repo.insert_many(conn, [firing("old", triggered=1.0), firing("new", triggered=9.0)])
        assert firings_repo.purge(conn, 5.0) == 1
    with db.read() as conn:
        assert [f.id for f in firings_repo.list_page(conn)[0]] == ["new"]


def test_a_repeated_firing_within_one_insert_is_stored_once(db: Database) -> None:
    with db.write() as conn:
        firings_repo.insert_many(conn, [firing("f1"), firing("f1")])
        assert [f.id for f in firings_repo.list_page(conn)[0]] == ["f1"]


def test_rows_written_by_the_first_release_still_read(db: Database) -> None:
    """The first firing history wrote every event key (empty ones too) and full child firings."""
    old_event = {
        "id": "ev",
        "event": "x",
        "occurred": 5.0,
        "received": 6.0,
        "resource": {"prefect.resource.id": "r"},
        "related": [],
        "payload": {},
        "follows": None,
    }
    child = {
        "id": "c",
        "automation_id": "a1",
        "trigger_id": "t-child",
        "trigger_type": "event",
        "posture": "Reactive",
        "triggered": 7.0,
        "triggering_event": old_event,
        "triggering_labels": {},
        "child_firings": [],
    }
    data = {"trigger_type": "compound", "posture": None, "triggering_event": None}
    row = {
        "id": "old",
        "automation_id": "a1",
        "trigger_id": "t",
        "fired": 8.0,
        "triggering_event_id": None,
        "labels": orjson.dumps({"k": "v"}),
        "data": orjson.dumps({**data, "child_firings": [child]}),
    }
    with db.write() as conn:
        conn.execute(sa.insert(tables.firings).values(**row))
    with db.read() as conn:
        stored = firings_repo.get(conn, "old")
    assert (stored.trigger_type, stored.triggering_labels) == ("compound", {"k": "v"})
    (only,) = stored.child_firings
    assert only.triggering_event is not None
    assert (only.id, only.triggering_event.received, only.triggering_event.payload) == (
        "c",
        6.0,
        {},
    )
