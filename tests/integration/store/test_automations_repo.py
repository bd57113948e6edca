"""Automations: create, read, list by pages, update with versions, enable/disable, delete."""

from __future__ import annotations

import dataclasses

import pytest

from automations.domain import errors
from automations.store import automations_repo, firings_repo, state_repo
from automations.store.database import Database
from tests.factories import automation, firing


def test_a_created_automation_reads_back_equal(db: Database) -> None:
    a = automation("a1")
    with db.write() as conn:
        assert automations_repo.create(conn, a) == a
    with db.read() as conn:
        assert automations_repo.get(conn, "a1") == a


def test_creating_an_existing_id_is_already_exists_and_the_transaction_survives(
    db: Database,
) -> None:
    with db.write() as conn:
        automations_repo.create(conn, automation("a1"))
    with db.write() as conn:
        with pytest.raises(errors.AlreadyExists):
            automations_repo.create(conn, automation("a1", name="other"))
        automations_repo.create(conn, automation("a2"))  # still usable (PostgreSQL too)
    with db.read() as conn:
        assert automations_repo.get(conn, "a1").name == "a"
        assert automations_repo.count(conn) == 2


def test_unknown_ids_are_not_found(db: Database) -> None:
    with db.write() as conn:
        with pytest.raises(errors.NotFound):
            automations_repo.get(conn, "nope")
        with pytest.raises(errors.NotFound):
            automations_repo.update(conn, automation("nope"), updated=5.0)
        with pytest.raises(errors.NotFound):
            automations_repo.delete(conn, "nope")
        with pytest.raises(errors.NotFound):
            automations_repo.set_enabled(conn, "nope", False, updated=5.0)


def test_update_bumps_the_version_and_keeps_created(db: Database) -> None:
    with db.write() as conn:
        automations_repo.create(conn, automation("a1", created=100.0))
        changed = dataclasses.replace(automation("a1", name="renamed"), created=999.0)
        stored = automations_repo.update(conn, changed, updated=200.0)
    assert (stored.version, stored.created, stored.updated) == (2, 100.0, 200.0)
    with db.read() as conn:
        assert automations_repo.get(conn, "a1") == stored
        assert stored.name == "renamed"


def test_a_stale_expected_version_is_a_failed_precondition(db: Database) -> None:
    with db.write() as conn:
        automations_repo.create(conn, automation("a1"))
        automations_repo.update(conn, automation("a1"), updated=2.0, expected_version=1)
        with pytest.raises(errors.FailedPrecondition) as info:
            automations_repo.update(conn, automation("a1"), updated=3.0, expected_version=1)
        assert info.value.reason == "VERSION_MISMATCH"
        with pytest.raises(errors.FailedPrecondition):
            automations_repo.delete(conn, "a1", expected_version=1)
        automations_repo.delete(conn, "a1", expected_version=2)


def test_list_pages_in_creation_order_and_filters_enabled(db: Database) -> None:
    with db.write() as conn:
        for i in range(7):
            automations_repo.create(
                conn, automation(f"a{i}", created=100.0 + (i % 3), enabled=i % 2 == 0)
            )
    expected = sorted((100.0 + (i % 3), f"a{i}") for i in range(7))
    seen: list[str] = []
    token = ""
    with db.read() as conn:
        while True:
            page, token = automations_repo.list_page(conn, page_size=3, page_token=token)
            seen.extend(a.id for a in page)
            if not token:
                break
        enabled = [a.id for a in automations_repo.list_enabled(conn)]
        disabled, _ = automations_repo.list_page(conn, enabled=False)
    assert seen == [i for _, i in expected]
    assert sorted(enabled) == ["a0", "a2", "a4", "a6"]
    assert sorted(a.id for a in disabled) == ["a1", "a3", "a5"]


def test_set_enabled_pauses_and_resumes(db: Database) -> None:
    with db.write() as conn:
        automations_repo.create(conn, automation("a1"))
        paused = automations_repo.set_enabled(conn, "a1", False, updated=7.0)
    assert (paused.enabled, paused.version, paused.updated) == (False, 2, 7.0)
    with db.read() as conn:
        assert automations_repo.list_enabled(conn) == []
        assert automations_repo.get(conn, "a1").enabled is False


def test_delete_removes_engine_state_and_keeps_firings(db: Database) -> None:
    with db.write() as conn:
        automations_repo.create(conn, automation("a1"))
        automations_repo.create(conn, automation("a2"))
        state_repo.upsert_many(
            conn, [("a1", "t", "bucket", "k", {"n": 1}, None), ("a2", "t", "bucket", "k", {}, None)]
        )
        firings_repo.insert_many(conn, [firing("f1", automation_id="a1")])
        automations_repo.delete(conn, "a1")
    with db.read() as conn:
        with pytest.raises(errors.NotFound):
            automations_repo.get(conn, "a1")
        assert [r.automation_id for r in state_repo.load_all(conn)] == ["a2"]
        assert firings_repo.get(conn, "f1").automation_id == "a1"
