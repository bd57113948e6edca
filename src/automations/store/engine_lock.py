"""One engine per database: a lock the engine takes at start and holds while it runs.

Two engines on one database would each evaluate every event and each re-queue the other's
in-flight invocations at start. So ``automations serve`` takes this lock before it touches the
database, and a second one refuses to start, naming the holder:

* **SQLite**: ``flock`` on ``<database>.engine-lock`` beside the file, which records its holder
  (host, pid, gRPC address, start time). ``flock`` locks belong to the open file and are released
  by the kernel when the process dies, whatever killed it; unlike POSIX record locks, closing
  another descriptor of the file does not drop them.
* **PostgreSQL**: a session advisory lock held by a connection of its own, whose
  ``application_name`` names the holder; the server releases it when the session ends, so a
  killed engine's lock goes with its connection.

An in-memory SQLite database needs no lock: no other process can open it.

Cluster replicas (PostgreSQL only) take the same advisory lock **shared**: any number of replicas
hold it together, while a single-node engine, which takes it exclusively, is refused on a database
a cluster runs on, and a replica on a database a single-node engine holds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
import zlib
from pathlib import Path

import sqlalchemy as sa

from automations.domain import errors
from automations.store import database as database_

PG_LOCK_KEY = zlib.crc32(b"automations engine") & 0x7FFFFFFF
"""The advisory lock's key (the migration lock uses another)."""


def holder_description(grpc_addr: str, *, what: str = "automations") -> str:
    """Who holds the lock, as the refusal of a second engine names it (``what``: which kind)."""
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    host = socket.gethostname()
    return f"{what} on {host} pid {os.getpid()} gRPC {grpc_addr}, since {started}"


class EngineLock:
    """The held lock (release it when the engine stops; the process's death releases it too)."""

    def __init__(self, release: contextlib.ExitStack) -> None:
        self._release = release

    def release(self) -> None:
        """Gives the lock up."""
        self._release.close()


def acquire(database: database_.Database, *, holder: str, shared: bool = False) -> EngineLock:
    """Takes the engine lock of ``database`` for this process.

    Args:
        database: The database (not migrated yet: the lock comes first).
        holder: Who takes it (``holder_description``), recorded for a second engine to name.
        shared: Take it shared (a cluster replica, PostgreSQL only), so that replicas hold it
            together and only an engine that takes it exclusively is refused.

    Raises:
        errors.FailedPrecondition: Another engine holds it (reason ``DATABASE_IN_USE``); the
            message names it.
    """
    stack = contextlib.ExitStack()
    if database.dialect == "sqlite":
        path = database.url.database
        if path and path != ":memory:" and not path.startswith("file::memory:"):
            _lock_file(Path(path.removeprefix("file:").split("?", 1)[0]), holder, stack)
    elif database.dialect == "postgresql":
        _lock_postgresql(database, holder, stack, shared=shared)
    return EngineLock(stack)


def _refuse(held_by: str) -> errors.FailedPrecondition:
    return errors.FailedPrecondition(
        f"another engine holds this database: {held_by or 'an unknown holder'}; one engine per "
        "database (stop it first, or point this one at another database)",
        reason="DATABASE_IN_USE",
    )


def _lock_file(database_file: Path, holder: str, stack: contextlib.ExitStack) -> None:
    path = database_file.with_name(database_file.name + ".engine-lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held_by = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        os.close(fd)
        raise _refuse(held_by) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode() + b"\n", 0)
    stack.callback(os.close, fd)  # closing the descriptor releases the lock


def _lock_postgresql(
    database: database_.Database, holder: str, stack: contextlib.ExitStack, *, shared: bool
) -> None:
    engine = sa.create_engine(database.url, poolclass=sa.pool.NullPool)
    stack.callback(engine.dispose)
    conn = stack.enter_context(engine.connect())
    name = holder[:63]  # PostgreSQL keeps 63 bytes of it
    conn.execute(sa.text("SELECT set_config('application_name', :name, false)"), {"name": name})
    conn.commit()
    function = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    got = conn.execute(sa.text(f"SELECT {function}(:key)"), {"key": PG_LOCK_KEY}).scalar()
    conn.commit()
    if got:
        return
    row = conn.execute(
        sa.text(
            "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = :key "
            "AND l.objsubid = 1 AND l.granted AND l.pid <> pg_backend_pid() "
            # advisory locks are per database: another database's engine is not the holder
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "LIMIT 1"
        ),
        {"key": PG_LOCK_KEY},
    ).first()
    stack.close()
    if row is None:
        raise _refuse("")
    name, address, since = row
    raise _refuse(f"{name} (connected from {address or 'a local socket'} since {since})")
