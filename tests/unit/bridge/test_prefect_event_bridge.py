from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from automations.bridge import prefect_events
from automations.bridge.prefect_events import BridgeOptions, PrefectEventBridge, PublishError
from tests.unit.bridge.fake_prefect import T0, FakeEngine, FakePrefectStream, event

pytestmark = pytest.mark.timeout(30)

FAST = BridgeOptions(flush_interval=0.05, backoff_initial=0.05, backoff_max=0.2, replay=60.0)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def bridging(bridge: PrefectEventBridge) -> Iterator[threading.Event]:
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            bridge.run(stop)
        except BaseException as exc:  # reported to the test
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(20)
        assert not thread.is_alive(), "the bridge did not stop"
    if failure:
        raise failure[0]


def since(seconds: float) -> float:
    return (T0 + dt.timedelta(seconds=seconds)).timestamp()


@pytest.mark.parametrize("seen_ids", [10_000, 0], ids=["bridge-skips-overlap", "engine-dedups"])
def test_events_before_during_and_after_a_reconnect_reach_the_engine_once_each(
    seen_ids: int,
) -> None:
    stream = FakePrefectStream()
    engine = FakeEngine()
    early = [event(0), event(1)]
    stream.stored.extend(early)
    options = BridgeOptions(
        flush_interval=0.05, backoff_initial=0.05, backoff_max=0.2, replay=60.0, seen_ids=seen_ids
    )
    with stream.running():
        bridge = PrefectEventBridge(stream.url, engine.publish, since=since(-100), options=options)
        with bridging(bridge):
            stream.wait_subscribed()
            before = event(2)
            stream.emit(before)
            wait_for(lambda: before["id"] in engine.published_ids())
            stream.drop()
            during = event(3)  # stored while the bridge is away
            stream.emit(during)
            stream.wait_subscribed()
            after = event(4)
            stream.emit(after)
            wait_for(lambda: after["id"] in engine.published_ids())

    every = [e["id"] for e in [*early, before, during, after]]
    assert sorted(engine.accepted) == sorted(every)
    assert set(engine.accepted.values()) == {1}
    assert bridge.connections == 2
    # the second subscription resumes from the last published event's time minus the replay
    resumed = dt.datetime.fromisoformat(stream.filters[1]["filter"]["occurred"]["since"])
    assert resumed == T0 + dt.timedelta(seconds=2 - 60)
    if seen_ids:
        assert not engine.duplicates  # the overlap was skipped by the bridge
    else:
        assert set(engine.duplicates) == {e["id"] for e in [*early, before]}


def test_the_subscription_authenticates_then_filters_by_time_and_name_prefix() -> None:
    stream = FakePrefectStream(token="s3cret")
    engine = FakeEngine()
    with stream.running():
        bridge = PrefectEventBridge(
            stream.url,
            engine.publish,
            auth_token="s3cret",
            event_patterns=["prefect.flow-run.*", "prefect.work-pool.*.ready"],
            since=since(0),
            options=FAST,
        )
        with bridging(bridge):
            stream.wait_subscribed()
            wanted = event(1, "prefect.flow-run.Completed")
            for other in (event(1, "prefect.flow.created"), event(1, "prefect.work-pool.x")):
                stream.emit(other)
            stream.emit(wanted)
            wait_for(lambda: wanted["id"] in engine.published_ids())

    assert stream.auth_messages == [{"type": "auth", "token": "s3cret"}]
    message = stream.filters[0]
    assert message["type"] == "filter" and message["backfill"] is True
    assert message["filter"]["order"] == "ASC"
    assert message["filter"]["event"] == {"prefix": ["prefect.flow-run.", "prefect.work-pool."]}
    occurred = message["filter"]["occurred"]
    assert dt.datetime.fromisoformat(occurred["since"]) == T0
    assert dt.datetime.fromisoformat(occurred["until"]) > dt.datetime.now(dt.UTC)
    # the fake does not filter by name: the bridge drops what the patterns do not match
    assert engine.published_ids() == {wanted["id"]}


def test_a_server_in_legacy_mode_gets_the_filter_without_an_auth_message() -> None:
    stream = FakePrefectStream(subprotocol=False)
    engine = FakeEngine()
    stream.stored.append(event(0))
    with stream.running():
        bridge = PrefectEventBridge(stream.url, engine.publish, since=since(-1), options=FAST)
        with bridging(bridge):
            wait_for(lambda: len(engine.published_ids()) == 1)
    assert stream.auth_messages == []
    assert len(stream.filters) == 1


def test_refused_credentials_stop_the_bridge_without_retrying() -> None:
    stream = FakePrefectStream(token="right")
    with stream.running():
        bridge = PrefectEventBridge(
            stream.url, FakeEngine().publish, auth_token="wrong", options=FAST
        )
        with pytest.raises(prefect_events.AuthenticationFailed, match="Invalid token"):
            bridge.run(threading.Event())
    assert len(stream.auth_messages) == 1


def test_an_unreachable_server_is_retried_with_backoff_until_stopped() -> None:
    stream = FakePrefectStream()
    with stream.running():
        url = stream.url
    bridge = PrefectEventBridge(url, FakeEngine().publish, options=FAST)
    stop = threading.Event()
    timer = threading.Timer(0.6, stop.set)
    timer.start()
    started = time.monotonic()
    bridge.run(stop)
    assert time.monotonic() - started < 0.6 + 5  # backoff (at most 0.2 s) never outlasts a stop
    assert bridge.connections == 0


def test_batches_hold_at_most_batch_size_events_and_the_rest_goes_after_the_interval() -> None:
    stream = FakePrefectStream()
    engine = FakeEngine()
    stream.stored.extend(event(i / 100) for i in range(250))
    # the interval is long enough for a busy machine to take 100 backfilled events in it
    options = BridgeOptions(batch_size=100, flush_interval=1.0, backoff_initial=0.05)
    with stream.running():
        bridge = PrefectEventBridge(stream.url, engine.publish, since=since(-1), options=options)
        with bridging(bridge):
            wait_for(lambda: len(engine.published_ids()) == 250)
    assert [len(b) for b in engine.batches] == [100, 100, 50]
    assert bridge.published == 250


def test_a_lone_event_is_published_within_the_flush_interval() -> None:
    stream = FakePrefectStream()
    engine = FakeEngine()
    options = BridgeOptions(batch_size=100, flush_interval=0.2)
    with stream.running():
        bridge = PrefectEventBridge(stream.url, engine.publish, since=since(0), options=options)
        with bridging(bridge):
            stream.wait_subscribed()
            lone = event(1)
            sent = time.monotonic()
            stream.emit(lone)
            wait_for(lambda: lone["id"] in engine.published_ids())
            # not held back for a batch of 100: the flush came after about 0.2 s
            assert time.monotonic() - sent < 5.0
    assert engine.batches == [[lone["id"]]]


def test_a_busy_engine_is_retried_and_the_batch_lands_once() -> None:
    stream = FakePrefectStream()
    busy = [PublishError("RESOURCE_EXHAUSTED", retryable=True)] * 2
    engine = FakeEngine(failures=busy)
    stream.stored.append(event(0))
    with stream.running():
        bridge = PrefectEventBridge(stream.url, engine.publish, since=since(-1), options=FAST)
        with bridging(bridge):
            wait_for(lambda: len(engine.published_ids()) == 1)
    assert len(engine.batches) == 1


def test_a_refused_batch_stops_the_bridge() -> None:
    stream = FakePrefectStream()
    engine = FakeEngine(failures=[PublishError("UNAUTHENTICATED", retryable=False)])
    stream.stored.append(event(0))
    with stream.running():
        bridge = PrefectEventBridge(stream.url, engine.publish, since=since(-1), options=FAST)
        with pytest.raises(prefect_events.BridgeError, match="UNAUTHENTICATED"):
            bridge.run(threading.Event())


def test_stopping_publishes_the_events_still_waiting() -> None:
    stream = FakePrefectStream()
    engine = FakeEngine()
    options = BridgeOptions(batch_size=100, flush_interval=60.0)
    with stream.running():
        bridge = PrefectEventBridge(stream.url, engine.publish, since=since(0), options=options)
        with bridging(bridge) as stop:
            stream.wait_subscribed()
            waiting = event(1)
            stream.emit(waiting)
            wait_for(lambda: bool(bridge._pending))
            stop.set()
        assert engine.published_ids() == {waiting["id"]}


@pytest.mark.parametrize(
    ("api_url", "socket_url"),
    [
        ("http://127.0.0.1:4200/api", "ws://127.0.0.1:4200/api/events/out"),
        ("https://prefect.example/api/", "wss://prefect.example/api/events/out"),
    ],
)
def test_the_socket_url_is_the_api_url_with_a_websocket_scheme(
    api_url: str, socket_url: str
) -> None:
    assert prefect_events.events_out_url(api_url) == socket_url


def test_name_patterns_match_whole_names_with_star_for_one_or_more_characters() -> None:
    matches = prefect_events.name_matcher(["prefect.flow-run.*", "x.*ed"])
    assert matches("prefect.flow-run.Completed")
    assert not matches("prefect.flow-run.")
    assert not matches("prefect.flow.created")
    assert matches("x.walked") and not matches("x.ed")
    assert prefect_events.name_matcher([])("anything")


def test_a_pattern_starting_with_a_star_disables_the_server_side_name_filter() -> None:
    assert prefect_events.name_prefixes(["*.Completed", "prefect.flow-run.*"]) == [
        "",
        "prefect.flow-run.",
    ]


def test_a_restarted_bridge_resumes_from_its_state_file(tmp_path: Path) -> None:
    state = str(tmp_path / "bridge.json")
    stream = FakePrefectStream()
    engine = FakeEngine()
    with stream.running():
        first = PrefectEventBridge(
            stream.url, engine.publish, since=since(0), options=FAST, state_path=state
        )
        with bridging(first):
            stream.wait_subscribed()
            published = event(300)
            stream.emit(published)
            wait_for(lambda: published["id"] in engine.published_ids())
    # a new process, no --since: it starts where the first one stopped (minus the replay)
    again = PrefectEventBridge("ws://unused", engine.publish, options=FAST, state_path=state)
    assert again.since == since(300) - FAST.replay
