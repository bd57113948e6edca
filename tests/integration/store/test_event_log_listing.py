"""Listing the event log: filters, keyset pagination in both directions, retention purge."""

from __future__ import annotations

import pytest

from automations.domain import errors
from automations.domain.events import Event
from automations.store import event_log
from automations.store.database import Database
from tests.factories import event

NAMES = [
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.task-run.Completed",
    "odd_name%x",
    "oddXnameYx",
    "q?[x]",
]


def seed(db: Database) -> list[Event]:
    items = [
        event(
            f"e{i:03d}",
            name=NAMES[i % len(NAMES)],
            occurred=1000.0 + i // 2,
            resource_id=f"prefect.flow-run.{i % 3}",
        )
        for i in range(60)
    ]
    with db.write() as conn:
        event_log.append(conn, items)
    return sorted(items, key=lambda e: (e.occurred, e.id))


def ids(items: list[Event]) -> list[str]:
    return [e.id for e in items]


def test_pages_walk_the_whole_log_in_occurred_then_id_order(db: Database) -> None:
    everything = seed(db)
    seen: list[Event] = []
    token = ""
    with db.read() as conn:
        while True:
            page, token = event_log.list_events(conn, page_size=7, page_token=token)
            assert len(page) <= 7
            seen.extend(page)
            if not token:
                break
    assert ids(seen) == ids(everything)


def test_newest_first_pages_walk_backwards(db: Database) -> None:
    everything = seed(db)
    seen: list[Event] = []
    token = ""
    with db.read() as conn:
        while True:
            page, token = event_log.list_events(
                conn, page_size=11, page_token=token, newest_first=True
            )
            seen.extend(page)
            if not token:
                break
    assert ids(seen) == ids(everything[::-1])


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["prefect.flow-run.Completed"], {"prefect.flow-run.Completed"}),
        (["prefect.flow-run.*"], {"prefect.flow-run.Completed", "prefect.flow-run.Failed"}),
        (["*.Completed"], {"prefect.flow-run.Completed", "prefect.task-run.Completed"}),
        (
            ["prefect.flow-run.Failed", "prefect.task-*"],
            {"prefect.flow-run.Failed", "prefect.task-run.Completed"},
        ),
        (["odd_name%*"], {"odd_name%x"}),  # _ and % are literal, not SQL wildcards
        (["q?[x]*"], {"q?[x]"}),  # ? and [ are literal, not GLOB wildcards
        (["PREFECT.*"], set()),  # case-sensitive
        (["*"], set(NAMES)),
    ],
)
def test_names_filter_takes_exact_names_and_star_globs(
    db: Database, names: list[str], expected: set[str]
) -> None:
    seed(db)
    with db.read() as conn:
        page, _ = event_log.list_events(conn, names=names, page_size=1000)
    assert {e.event for e in page} == expected


def test_resource_and_time_filters_combine(db: Database) -> None:
    everything = seed(db)
    with db.read() as conn:
        page, token = event_log.list_events(
            conn, resource_id="prefect.flow-run.1", start=1005.0, end=1020.0, page_size=1000
        )
    expected = [
        e
        for e in everything
        if e.resource_id == "prefect.flow-run.1" and 1005.0 <= e.occurred < 1020.0
    ]
    assert ids(page) == ids(expected) and expected and token == ""


def test_filtered_pagination_stays_within_the_filter(db: Database) -> None:
    everything = seed(db)
    expected = [e for e in everything if e.event.endswith("Completed")]
    seen: list[Event] = []
    token = ""
    with db.read() as conn:
        while True:
            page, token = event_log.list_events(
                conn, names=["*Completed"], page_size=4, page_token=token
            )
            seen.extend(page)
            if not token:
                break
    assert ids(seen) == ids(expected)


@pytest.mark.parametrize("token", ["garbage!", "e30", "WyJmaXJpbmdzIiwxLjAsIngiXQ"])
def test_a_bad_page_token_is_an_invalid_argument(db: Database, token: str) -> None:
    with db.read() as conn, pytest.raises(errors.InvalidArgument) as info:
        event_log.list_events(conn, page_token=token)
    assert info.value.field == "page_token"


def test_purge_deletes_events_older_than_the_cutoff_in_chunks(db: Database) -> None:
    everything = seed(db)
    with db.write() as conn:
        assert event_log.purge(conn, 1010.0, limit=15) == 15
        assert event_log.purge(conn, 1010.0, limit=15) == 5
        assert event_log.purge(conn, 1010.0) == 0
    with db.read() as conn:
        page, _ = event_log.list_events(conn, page_size=1000)
    assert ids(page) == ids([e for e in everything if e.occurred >= 1010.0])


def test_a_purged_id_is_accepted_again(db: Database) -> None:
    with db.write() as conn:
        event_log.append(conn, [event("old", occurred=1.0)])
        event_log.purge(conn, 2.0)
        assert event_log.append(conn, [event("old", occurred=1.0)]) == [True]


def test_a_token_only_fits_the_direction_it_came_from(db: Database) -> None:
    seed(db)
    with db.read() as conn:
        _, token = event_log.list_events(conn, page_size=5)
        with pytest.raises(errors.InvalidArgument):
            event_log.list_events(conn, page_size=5, page_token=token, newest_first=True)
