from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from automations import executor


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def store(
    path: Path, *, pid: int = 100, alive: frozenset[int] = frozenset(), clock: Clock | None = None
) -> executor.SqliteIdempotencyStore:
    return executor.SqliteIdempotencyStore(
        path, pid=pid, is_alive=lambda p: p in alive, clock=clock or Clock()
    )


def test_a_new_key_is_claimed_and_a_completed_one_returns_its_record(tmp_path: Path) -> None:
    s = store(tmp_path / "s.db")
    assert s.claim("k") == executor.Claimed()
    s.complete("k", {"result": {"status_code": 200}})
    assert s.claim("k") == executor.Done({"result": {"status_code": 200}})


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    first = store(tmp_path / "s.db", pid=100)
    first.claim("k")
    first.complete("k", {"result": {"n": 1}})
    first.close()
    second = store(tmp_path / "s.db", pid=200)
    assert second.claim("k") == executor.Done({"result": {"n": 1}})


def test_a_final_failure_is_returned_again(tmp_path: Path) -> None:
    s = store(tmp_path / "s.db")
    s.claim("k")
    s.fail(
        "k",
        executor.ActionError(
            grpc.StatusCode.INVALID_ARGUMENT, "no url", "WEBHOOK_URL_MISSING", {"field": "url"}
        ),
    )
    claim = s.claim("k")
    assert isinstance(claim, executor.Failed)
    assert claim.error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert (claim.error.message, claim.error.reason, claim.error.metadata) == (
        "no url",
        "WEBHOOK_URL_MISSING",
        {"field": "url"},
    )


def test_a_released_key_can_be_claimed_again(tmp_path: Path) -> None:
    s = store(tmp_path / "s.db")
    s.claim("k")
    s.release("k")
    assert s.claim("k") == executor.Claimed()


def test_a_key_running_under_another_live_process_is_busy(tmp_path: Path) -> None:
    other = store(tmp_path / "s.db", pid=100)
    other.claim("k")
    me = store(tmp_path / "s.db", pid=200, alive=frozenset({100, 200}))
    assert me.claim("k") == executor.Busy(100)


def test_a_key_left_running_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = store(tmp_path / "s.db", pid=100)
    dead.claim("k")
    me = store(tmp_path / "s.db", pid=200, alive=frozenset({200}))
    assert me.claim("k") == executor.Claimed()
    me.complete("k", {"result": {}})
    assert me.claim("k") == executor.Done({"result": {}})
    # the dead owner can no longer complete or release what it lost
    dead.release("k")
    assert me.claim("k") == executor.Done({"result": {}})


def test_a_key_left_by_an_earlier_process_with_the_same_pid_is_taken_over(tmp_path: Path) -> None:
    before = store(tmp_path / "s.db", pid=1)
    before.claim("k")
    after = store(tmp_path / "s.db", pid=1, alive=frozenset({1}))
    assert after.claim("k") == executor.Claimed()


def test_a_claim_older_than_the_limit_is_taken_over_even_if_its_pid_lives(tmp_path: Path) -> None:
    clock = Clock()
    other = store(tmp_path / "s.db", pid=100, clock=clock)
    other.claim("k")
    clock.now += 2 * 3600
    me = store(tmp_path / "s.db", pid=200, alive=frozenset({100}), clock=clock)
    assert me.claim("k") == executor.Claimed()


def test_completed_keys_are_purged_after_the_retention(tmp_path: Path) -> None:
    clock = Clock()
    s = executor.SqliteIdempotencyStore(tmp_path / "s.db", retention_seconds=60, clock=clock)
    s.claim("old")
    s.complete("old", {"result": {}})
    clock.now += 30
    s.claim("young")
    s.complete("young", {"result": {}})
    s.claim("running")
    clock.now += 45
    assert s.purge() == 1
    assert s.claim("old") == executor.Claimed()
    assert s.claim("young") == executor.Done({"result": {}})


def test_the_state_file_uses_wal(tmp_path: Path) -> None:
    s = store(tmp_path / "dir" / "s.db")
    s.claim("k")
    assert (tmp_path / "dir" / "s.db-wal").exists()


@pytest.mark.parametrize("max_keys", [2])
def test_the_memory_store_forgets_the_oldest_keys(max_keys: int) -> None:
    s = executor.MemoryIdempotencyStore(max_keys=max_keys)
    for key in ("a", "b", "c"):
        s.claim(key)
        s.complete(key, {"result": {"key": key}})
    assert s.claim("a") == executor.Claimed()
    assert s.claim("c") == executor.Done({"result": {"key": "c"}})
