"""Appending events dedups by id, across batches and within one, and stores every field."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest

from automations.domain import errors
from automations.store import event_log
from automations.store.database import Database
from tests.factories import event


class LazyPayload(Mapping[str, Any]):
    """A read-only mapping that is not a dict (like the API's lazy Struct view)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_new_events_are_true_and_stored_with_every_field(db: Database) -> None:
    e = event("e1", follows="e0", payload={"a": {"b": [1, 2]}, "s": "é"})
    with db.write() as conn:
        assert event_log.append(conn, [e]) == [True]
    with db.read() as conn:
        stored = event_log.get_many(conn, ["e1"])["e1"]
    assert stored == e


def test_an_id_already_in_the_log_is_a_duplicate(db: Database) -> None:
    with db.write() as conn:
        assert event_log.append(conn, [event("a"), event("b")]) == [True, True]
    with db.write() as conn:
        assert event_log.append(conn, [event("b"), event("c"), event("a")]) == [False, True, False]
    with db.read() as conn:
        assert event_log.count(conn) == 3


def test_new_events_between_duplicates_are_told_apart_whatever_the_order(db: Database) -> None:
    old = [event("a", occurred=1.0), event("c", occurred=2.0), event("z", occurred=10.0)]
    with db.write() as conn:
        assert event_log.append(conn, old) == [True] * 3
    with db.write() as conn:  # the last row of the statement is a duplicate, new ones between
        flags = event_log.append(
            conn, [event("a"), event("b"), event("c"), event("d"), event("e"), event("z")]
        )
    assert flags == [False, True, False, True, True, False]
    with db.write() as conn:  # "a" and "c" purged: gaps below the largest rowid
        assert event_log.purge(conn, older_than=3.0) == 2
        assert event_log.append(conn, [event("z"), event("a"), event("b"), event("f")]) == [
            False,
            True,
            False,
            True,
        ]
    with db.read() as conn:
        assert event_log.count(conn) == 6


def test_within_one_batch_the_first_occurrence_wins(db: Database) -> None:
    first = event("x", occurred=1.0)
    second = event("x", occurred=2.0)
    with db.write() as conn:
        assert event_log.append(conn, [first, event("y"), second, event("y")]) == [
            True,
            True,
            False,
            False,
        ]
    with db.read() as conn:
        assert event_log.get_many(conn, ["x"])["x"].occurred == 1.0


def test_batches_larger_than_a_chunk_keep_their_order_of_answers(db: Database) -> None:
    items = [event(f"e{i % 1500}", occurred=float(i)) for i in range(2100)]
    with db.write() as conn:
        event_log.append(conn, [event("e7"), event("e1499")])
        flags = event_log.append(conn, items)
    expected = [i < 1500 and i not in (7, 1499) for i in range(2100)]
    assert flags == expected
    with db.read() as conn:
        assert event_log.count(conn) == 1500


def test_a_duplicate_in_a_later_chunk_leaves_the_earlier_chunks_new(db: Database) -> None:
    items = [event(f"e{i}", occurred=float(i)) for i in range(9000)]  # three SQLite chunks
    with db.write() as conn:
        event_log.append(conn, [event("e8500")])
        flags = event_log.append(conn, items)
    assert flags == [i != 8500 for i in range(9000)]
    with db.read() as conn:
        assert event_log.count(conn) == 9000


def test_several_appends_in_one_transaction_group_commit(db: Database) -> None:
    with db.write() as conn:
        assert event_log.append(conn, [event("a"), event("b")]) == [True, True]
        assert event_log.append(conn, [event("b"), event("c")]) == [False, True]
        assert event_log.append(conn, []) == []
        assert event_log.append(conn, [event("d")]) == [True]
    with db.read() as conn:
        assert event_log.count(conn) == 4


def test_a_lazy_payload_mapping_is_stored_as_an_object(db: Database) -> None:
    e = event("lazy", payload=LazyPayload({"k": LazyPayload({"v": 1})}))
    with db.write() as conn:
        assert event_log.append(conn, [e]) == [True]
    with db.read() as conn:
        assert event_log.get_many(conn, ["lazy"])["lazy"].payload == {"k": {"v": 1}}


def test_a_rolled_back_append_leaves_no_ids_behind(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as conn:
        event_log.append(conn, [event("gone")])
        raise RuntimeError("crash before commit")
    with db.write() as conn:
        assert event_log.append(conn, [event("gone")]) == [True]


def test_postgresql_falls_back_when_another_writer_won_the_race(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if db.dialect != "postgresql":
        pytest.skip("the COPY fast path and its fallback are PostgreSQL's")
    with db.write() as conn:
        event_log.append(conn, [event("taken")])
    # Blind the pre-check, as if another replica inserted "taken" after it ran.
    monkeypatch.setattr(
        event_log, "_PG_EXISTING", "SELECT id FROM events WHERE false AND id = ANY(%b::text[])"
    )
    with db.write() as conn:
        assert event_log.append(conn, [event("new"), event("taken"), event("new2")]) == [
            True,
            False,
            True,
        ]
        assert event_log.append(conn, [event("later")]) == [True]  # the transaction is fine
    with db.read() as conn:
        assert event_log.count(conn) == 4


def test_keys_too_long_to_index_are_refused_before_anything_is_written(db: Database) -> None:
    with db.write() as conn:
        with pytest.raises(errors.InvalidArgument) as info:
            event_log.append(conn, [event("ok"), event("x", resource_id="r" * 3000)])
        assert info.value.field == "events[1].resource"
        assert event_log.append(conn, [event("ok"), event("é" * 600)]) == [True, True]
        assert event_log.count(conn) == 2


def test_commit_as_you_go_callers_keep_their_events(db: Database) -> None:
    with db.writer.connect() as conn:
        assert event_log.append(conn, [event("cayg")]) == [True]
        conn.commit()
    with db.read() as conn:
        assert event_log.count(conn) == 1


@pytest.mark.parametrize(
    ("related", "payload"),
    [((), {}), (({"prefect.resource.id": "f", "prefect.resource.role": "flow"},), {"x": [1]})],
    ids=["labels only", "related and payload"],
)
def test_stored_bodies_keep_one_json_layout_whichever_way_they_are_encoded(
    related: tuple[dict[str, str], ...], payload: dict[str, Any]
) -> None:
    # events with labels only are encoded by concatenation (the ingest fast path)
    e = dataclasses.replace(event("e1"), related=related, payload=payload)
    assert event_log.encode_body(e) == orjson.dumps(
        {"resource": e.resource, "related": list(related), "payload": payload}
    )
