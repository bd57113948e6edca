"""Deduplication on the invocation's ``idempotency_key``: an executor acts at most once per key.

The engine delivers at least once: it retries after timeouts, crashes and retryable errors, always
with the same key. :class:`Deduplicator` makes the executor act once per key and answer every
repeat with the first outcome:

- before acting, the key is *claimed* (state ``running``, owned by this process);
- after success the result is stored (``done``); a repeat returns it without acting again;
- a final failure is stored (``failed``) so that a repeat returns the same final error;
- a retryable failure deletes the claim, so that the retry acts again;
- the action runs in a task of its own: a caller that goes away (its deadline passed, the engine
  crashed) does not cancel it, and its outcome is still recorded for the retry; only cancelling
  that task itself (the process stopping) deletes the claim;
- a repeat that arrives while the first call is still running in this process waits for the
  first call's outcome; one running in another live process gets ABORTED (retryable: the engine
  tries again later); a claim left by a process that died (or older than ``max_claim_seconds``)
  is taken over.

Two stores: :class:`SqliteIdempotencyStore` (a WAL-mode SQLite file that survives restarts and may
be shared by several processes) and :class:`MemoryIdempotencyStore` (a bounded dict, for ``noop``).
Completed keys are kept for a retention period (7 days by default) and purged now and then.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import grpc

from automations.executor._errors import ActionError

Record: TypeAlias = dict[str, Any]
"""What is stored for a completed key: a JSON-able object (the harness's encoded response)."""

DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600.0
"""How long completed keys are remembered."""

DEFAULT_MAX_CLAIM_SECONDS = 3600.0
"""A ``running`` claim older than this is taken over even if its process seems alive."""

PURGE_INTERVAL_SECONDS = 3600.0
"""How often expired keys are purged (checked on each claim)."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """The key is now ours: act, then complete, fail or release it."""


@dataclass(frozen=True, slots=True)
class Done:
    """The key was carried out before; ``record`` is what was stored then."""

    record: Record


@dataclass(frozen=True, slots=True)
class Failed:
    """The key failed finally before; ``error`` is returned again."""

    error: ActionError


@dataclass(frozen=True, slots=True)
class Busy:
    """Another live process is carrying out the key right now."""

    pid: int


Claim: TypeAlias = Claimed | Done | Failed | Busy
"""The answer to :meth:`IdempotencyStore.claim`."""


class IdempotencyStore(Protocol):
    """Where the state of each idempotency key is kept. Calls are short and synchronous."""

    def claim(self, key: str) -> Claim:
        """Claims ``key`` for this process, or says why not (done, failed or busy)."""
        ...

    def complete(self, key: str, record: Record) -> None:
        """Marks a claimed key done with the record a repeat returns."""
        ...

    def fail(self, key: str, error: ActionError) -> None:
        """Marks a claimed key finally failed; a repeat returns ``error`` again."""
        ...

    def release(self, key: str) -> None:
        """Drops the claim of ``key`` so that the next attempt acts again."""
        ...

    def close(self) -> None:
        """Releases the store's resources."""
        ...


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_state_path(name: str) -> Path:
    """The default state file of executor ``name``: ``./automations-executor-<name>.db``."""
    return Path(f"automations-executor-{name}.db")


class SqliteIdempotencyStore:
    """Idempotency keys in a SQLite file (WAL), kept across restarts.

    Each row holds the key, its state (``running``, ``done`` or ``failed``), the pid and a
    per-store-instance owner token of the process that claimed it (the token tells a previous
    incarnation that happened to get the same pid, as in a container, from this one), the stored
    record and the time of the last change.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        max_claim_seconds: float = DEFAULT_MAX_CLAIM_SECONDS,
        clock: Callable[[], float] = time.time,
        pid: int | None = None,
        is_alive: Callable[[int], bool] = pid_alive,
        busy_timeout_seconds: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._retention = retention_seconds
        self._max_claim = max_claim_seconds
        self._clock = clock
        self._pid = os.getpid() if pid is None else pid
        self._owner = uuid.uuid4().hex
        self._is_alive = is_alive
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS idempotency_keys ("
            " key TEXT PRIMARY KEY, state TEXT NOT NULL, pid INTEGER NOT NULL,"
            " owner TEXT NOT NULL, record TEXT, updated_at REAL NOT NULL) WITHOUT ROWID"
        )
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS idempotency_keys_updated_at"
            " ON idempotency_keys (updated_at)"
        )
        self._last_purge = 0.0

    def claim(self, key: str) -> Claim:
        """Claims ``key`` (see the module docstring for the rules)."""
        now = self._clock()
        if now - self._last_purge >= PURGE_INTERVAL_SECONDS:
            self.purge()
        inserted = self._db.execute(
            "INSERT OR IGNORE INTO idempotency_keys (key, state, pid, owner, record, updated_at)"
            " VALUES (?, 'running', ?, ?, NULL, ?)",
            (key, self._pid, self._owner, now),
        ).rowcount
        if inserted:
            return Claimed()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(
                "SELECT state, pid, owner, record, updated_at FROM idempotency_keys WHERE key = ?",
                (key,),
            ).fetchone()
            claim = self._decide(key, row, now)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return claim

    def _decide(self, key: str, row: tuple[Any, ...] | None, now: float) -> Claim:
        if row is not None:
            state, pid, owner, record, updated_at = row
            if state == "done":
                done: Record = json.loads(record)
                return Done(done)
            if state == "failed":
                return Failed(ActionError.from_json(json.loads(record)))
            stale = now - float(updated_at) > self._max_claim
            ours_before = pid == self._pid and owner != self._owner
            if owner != self._owner and not stale and not ours_before and self._is_alive(pid):
                return Busy(int(pid))
        self._db.execute(
            "INSERT OR REPLACE INTO idempotency_keys (key, state, pid, owner, record, updated_at)"
            " VALUES (?, 'running', ?, ?, NULL, ?)",
            (key, self._pid, self._owner, now),
        )
        return Claimed()

    def complete(self, key: str, record: Record) -> None:
        """Stores ``record`` as the outcome of ``key``."""
        self._finish(key, "done", json.dumps(record, separators=(",", ":")))

    def fail(self, key: str, error: ActionError) -> None:
        """Stores the final ``error`` of ``key``."""
        self._finish(key, "failed", json.dumps(error.to_json(), separators=(",", ":")))

    def _finish(self, key: str, state: str, record: str) -> None:
        self._db.execute(
            "UPDATE idempotency_keys SET state = ?, record = ?, updated_at = ?"
            " WHERE key = ? AND owner = ?",
            (state, record, self._clock(), key, self._owner),
        )

    def release(self, key: str) -> None:
        """Deletes this process's claim of ``key``."""
        self._db.execute(
            "DELETE FROM idempotency_keys WHERE key = ? AND owner = ? AND state = 'running'",
            (key, self._owner),
        )

    def purge(self) -> int:
        """Deletes completed keys older than the retention; returns how many."""
        now = self._clock()
        self._last_purge = now
        return self._db.execute(
            "DELETE FROM idempotency_keys WHERE state != 'running' AND updated_at < ?",
            (now - self._retention,),
        ).rowcount

    def close(self) -> None:
        """Closes the database connection."""
        self._db.close()


class MemoryIdempotencyStore:
    """Idempotency keys in a dict: forgotten on restart, at most ``max_keys`` (oldest dropped)."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._max_keys = max_keys
        self._keys: dict[str, Claim] = {}

    def claim(self, key: str) -> Claim:
        """Claims ``key`` unless it is done or failed."""
        known = self._keys.get(key)
        if known is not None and not isinstance(known, Claimed):
            return known
        self._keys[key] = Claimed()
        if len(self._keys) > self._max_keys:
            del self._keys[next(iter(self._keys))]
        return Claimed()

    def complete(self, key: str, record: Record) -> None:
        """Remembers ``record`` for ``key``."""
        self._keys[key] = Done(record)

    def fail(self, key: str, error: ActionError) -> None:
        """Remembers the final ``error`` of ``key``."""
        self._keys[key] = Failed(error)

    def release(self, key: str) -> None:
        """Forgets ``key``."""
        self._keys.pop(key, None)

    def close(self) -> None:
        """Nothing to release."""


Outcome: TypeAlias = Record | ActionError
"""What one key came to: the stored record, or the error returned to the caller."""


class Deduplicator:
    """Runs an action at most once per idempotency key (see the module docstring).

    Args:
        store: Where key states are kept.
    """

    def __init__(self, store: IdempotencyStore) -> None:
        self.store = store
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    async def run(self, key: str, act: Callable[[], Awaitable[Record]]) -> tuple[Outcome, bool]:
        """Acts for ``key`` unless it already was; returns the outcome and whether it is a repeat.

        ``act`` raises :class:`ActionError` for expected failures; any other exception is
        turned into a retryable INTERNAL error (the claim is released).
        """
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running), True
        claim = self.store.claim(key)
        if isinstance(claim, Done):
            return claim.record, True
        if isinstance(claim, Failed):
            return claim.error, True
        if isinstance(claim, Busy):
            return (
                ActionError(
                    grpc.StatusCode.ABORTED,
                    "Another executor process is carrying out this invocation",
                    "ACTION_IN_PROGRESS",
                    {"pid": str(claim.pid)},
                ),
                False,
            )
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        # The action runs in its own task: if the caller goes away (the engine crashed, or its
        # deadline passed) the action still completes and its outcome is recorded, so the
        # engine's retry gets the stored result instead of acting a second time.
        task = asyncio.ensure_future(self._act(key, act, future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(future), False

    async def _act(
        self, key: str, act: Callable[[], Awaitable[Record]], future: asyncio.Future[Outcome]
    ) -> None:
        outcome: Outcome = ActionError(
            grpc.StatusCode.ABORTED,
            "A concurrent attempt with this idempotency key was cancelled",
            "ACTION_CANCELLED",
        )
        try:
            try:
                outcome = await act()
            except ActionError as exc:
                outcome = exc
            except Exception as exc:  # any bug becomes a retryable INTERNAL error
                outcome = ActionError(
                    grpc.StatusCode.INTERNAL,
                    f"Executor error: {type(exc).__name__}",
                    "EXECUTOR_INTERNAL_ERROR",
                )
                outcome.__cause__ = exc
            if isinstance(outcome, ActionError):
                if outcome.retryable:
                    self.store.release(key)
                else:
                    self.store.fail(key, outcome)
            else:
                self.store.complete(key, outcome)
        except BaseException:
            self.store.release(key)
            raise
        finally:
            del self._inflight[key]
            if not future.done():
                future.set_result(outcome)

    async def drain(self, timeout: float) -> None:
        """Waits (up to ``timeout`` seconds) for actions still running after their callers left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
