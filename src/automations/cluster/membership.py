"""Cluster membership: who is in the cluster and who is dead, from PostgreSQL advisory locks.

A replica joins by taking a session advisory lock on a random key, on a connection of its own
held for the replica's whole life, and only then inserting its ``cluster_members`` row naming the
key. The server frees a session's advisory locks when the session ends, and the kernel ends it
within milliseconds when the process dies, however it died (kill -9 included). So a peer *probes*
a member with ``pg_try_advisory_lock(key)``: if the lock can be taken, its holder is gone (the
probe unlocks at once). A stopped process (SIGSTOP) or one cut off from the network keeps its lock
until TCP gives up; that is what leases are for (``leases``): the probe is a fast death detector,
never the basis of safety (``fencing``).

Because the lock comes before the row, a row whose lock is free belongs to a dead member
(or to one leaving, which deletes its row first and then unlocks): :meth:`Membership.prune`
deletes such rows, by id *and* lock key, so that a replica rejoining under the same id is never
pruned by a stale verdict.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from automations.cluster import creation
from automations.domain import errors
from automations.store import database as database_
from automations.store import tables

T = TypeVar("T")

_KEY_FLOOR = 1 << 32
"""Member lock keys are at or above it: the single-node engine and migration locks are below."""

_MEMBER_COLUMNS = (
    tables.cluster_members.c.id,
    tables.cluster_members.c.host,
    tables.cluster_members.c.pid,
    tables.cluster_members.c.grpc_addr,
    tables.cluster_members.c.lock_key,
    tables.cluster_members.c.started,
    tables.cluster_members.c.heartbeat,
)

_KEEPALIVES = (
    # The server's side of the lock session: a member cut off from PostgreSQL by the network
    # loses its lock (and is seen dead) in about 10 s rather than after the kernel's 2 h default.
    # Settings a user may change; they do nothing on a Unix socket.
    ("tcp_keepalives_idle", "5"),
    ("tcp_keepalives_interval", "1"),
    ("tcp_keepalives_count", "5"),
    ("tcp_user_timeout", "10000"),
)


class MembershipLost(errors.Unavailable):
    """This replica's lock session ended or its row was pruned: peers may consider it dead.

    Its partitions may be taken at any moment (its commits are fenced, so nothing is at risk);
    the replica should drop them and join again.
    """

    default_reason = "CLUSTER_MEMBERSHIP_LOST"


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """A ``cluster_members`` row.

    Attributes:
        id: The member id (unique in the cluster).
        host: The host name it runs on.
        pid: Its process id on that host.
        grpc_addr: The address its gRPC API listens on.
        lock_key: The advisory lock key it holds while alive.
        started: When it joined (PostgreSQL time, epoch seconds).
        heartbeat: Its last heartbeat (PostgreSQL time, epoch seconds).
    """

    id: str
    host: str
    pid: int
    grpc_addr: str
    lock_key: int
    started: float
    heartbeat: float


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One probe of every member row.

    Attributes:
        live: Members whose lock is held (their process, or at least its session, lives).
        dead: Members whose lock was free: gone, their row is stale.
    """

    live: tuple[Member, ...]
    dead: tuple[Member, ...]

    @property
    def live_ids(self) -> frozenset[str]:
        """The live members' ids."""
        return frozenset(member.id for member in self.live)

    @property
    def dead_ids(self) -> frozenset[str]:
        """The dead members' ids."""
        return frozenset(member.id for member in self.dead)


def new_member_id(host: str | None = None) -> str:
    """A fresh member id: ``<host>-<pid>-<8 random hex digits>`` (unique per process start)."""
    return f"{host or socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def probe(conn: Connection) -> Probe:
    """Reads every member row and tells live members from dead ones by their advisory locks.

    Two statements whatever the number of members: try every member's lock, then release the
    ones taken. ``conn`` must not be a session holding member locks itself (a session re-takes
    its own locks, which would make its member look dead): use a connection of a pool or of
    :class:`Membership`'s own probe, never a member's lock session.

    Args:
        conn: A PostgreSQL connection (in a transaction or not).

    Returns:
        The live and the dead members.
    """
    rows = conn.execute(
        sa.select(
            *_MEMBER_COLUMNS, sa.func.pg_try_advisory_lock(tables.cluster_members.c.lock_key)
        ).order_by(tables.cluster_members.c.id)
    ).all()
    taken = [int(row.lock_key) for row in rows if row[-1]]
    if taken:
        try:
            conn.execute(
                sa.text("SELECT pg_advisory_unlock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                {"keys": taken},
            )
        except BaseException:
            # a session left holding a dead member's lock would make that member look alive to
            # every other session: never give it back to a pool
            conn.invalidate()
            raise
    members = [(Member(*(row[:7])), bool(row[-1])) for row in rows]
    return Probe(
        live=tuple(member for member, free in members if not free),
        dead=tuple(member for member, free in members if free),
    )


class Membership:
    """This replica's membership: its row, the advisory lock that says it lives, and a probe.

    Create it with :func:`join`. It owns two connections of its own (not pooled): the *lock
    session*, held until :meth:`leave` (it also carries the heartbeat, so a heartbeat that
    succeeds proves the lock is still held), and the *probe session*. Methods are thread-safe.
    """

    def __init__(self, engine: sa.Engine, lock_conn: Connection, member: Member) -> None:
        """Wraps a joined member; use :func:`join`."""
        self._engine = engine
        self._lock_conn: Connection | None = lock_conn
        self._lock_guard = threading.Lock()
        self._probe_conn: Connection | None = None
        self._probe_guard = threading.Lock()
        self._left = False
        self.member = member

    @property
    def id(self) -> str:
        """This replica's member id."""
        return self.member.id

    def heartbeat(self) -> None:
        """Records a heartbeat on the lock session, proving that session (and its lock) lives.

        Raises:
            MembershipLost: The lock session is gone, or a peer pruned this member's row.
        """
        table = tables.cluster_members
        with self._lock_guard:
            if self._lock_conn is None:
                raise MembershipLost(f"member {self.id} has left the cluster")
            try:
                updated = self._lock_conn.execute(
                    sa.update(table)
                    .where(table.c.id == self.id, table.c.lock_key == self.member.lock_key)
                    .values(heartbeat=creation.PG_NOW)
                ).rowcount
            except sa.exc.SQLAlchemyError as exc:
                raise MembershipLost(
                    f"member {self.id} lost its lock session ({_first_line(exc)}): "
                    "peers may take its partitions"
                ) from exc
        if updated != 1:
            raise MembershipLost(f"member {self.id} was pruned by a peer that saw it dead")

    def probe(self) -> Probe:
        """Probes every member on this replica's probe session (see :func:`probe`).

        Raises:
            errors.Unavailable: PostgreSQL did not answer (the probe session is replaced next
                time).
            MembershipLost: This replica has left.
        """
        return self._on_probe_session("probing the cluster's members", probe)

    def prune(self, dead: Iterable[Member]) -> int:
        """Deletes the rows of members a probe found dead (never this replica's own).

        Args:
            dead: Members from :attr:`Probe.dead`.

        Returns:
            How many rows were deleted (a member that rejoined since keeps its new row).

        Raises:
            errors.Unavailable: PostgreSQL did not answer.
            MembershipLost: This replica has left.
        """
        pairs = [(m.id, m.lock_key) for m in dead if m.id != self.id]
        if not pairs:
            return 0
        table = tables.cluster_members
        where = sa.tuple_(table.c.id, table.c.lock_key).in_(pairs)
        return self._on_probe_session(
            "pruning dead members",
            lambda conn: int(conn.execute(sa.delete(table).where(where)).rowcount),
        )

    def leave(self) -> None:
        """Deletes this replica's row, then releases its lock and closes its sessions (idempotent).

        Release or hand off the partitions first (``leases.release``): once the row is gone its
        partitions are free for anyone.
        """
        with self._lock_guard:
            conn, self._lock_conn = self._lock_conn, None
            if conn is not None:
                table = tables.cluster_members
                try:
                    conn.execute(
                        sa.delete(table).where(
                            table.c.id == self.id, table.c.lock_key == self.member.lock_key
                        )
                    )
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(self.member.lock_key)))
                except sa.exc.SQLAlchemyError:
                    pass  # the session is gone: so is the lock, and a peer prunes the row
                finally:
                    conn.close()
        with self._probe_guard:
            self._left = True
            self._close_probe()
        self._engine.dispose()

    def _on_probe_session(self, what: str, action: Callable[[Connection], T]) -> T:
        """Runs ``action`` on the probe session (opened on first use, replaced after a failure)."""
        with self._probe_guard:
            if self._left:
                raise MembershipLost(f"member {self.id} has left the cluster")
            try:
                if self._probe_conn is None:
                    self._probe_conn = self._engine.connect()
                return action(self._probe_conn)
            except sa.exc.SQLAlchemyError as exc:
                self._close_probe()
                raise errors.Unavailable(f"{what} failed: {_first_line(exc)}") from exc

    def _close_probe(self) -> None:
        if self._probe_conn is not None:
            try:
                self._probe_conn.close()
            except sa.exc.SQLAlchemyError:
                pass
            self._probe_conn = None

    def __enter__(self) -> Membership:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.leave()


def join(
    database: database_.Database,
    *,
    grpc_addr: str,
    member_id: str | None = None,
    host: str | None = None,
) -> Membership:
    """Joins the cluster: takes a fresh advisory lock on a session of its own, then inserts the row.

    A member id already in the table is taken over when its holder is dead, and refused while it
    lives.

    Args:
        database: The cluster's database (PostgreSQL).
        grpc_addr: This replica's gRPC address (shown by the cluster status).
        member_id: The id to join under (default: :func:`new_member_id`).
        host: The host name to record (default: this host's name).

    Returns:
        The membership; :meth:`Membership.leave` it when the replica stops.

    Raises:
        errors.InvalidArgument: The database is not PostgreSQL (see
            ``creation.require_postgresql``).
        errors.FailedPrecondition: A live replica holds ``member_id`` (reason
            ``MEMBER_ID_IN_USE``); the message names it.
        errors.Unavailable: PostgreSQL could not be reached.
    """
    creation.require_postgresql(database)
    host = host or socket.gethostname()
    member_id = member_id or new_member_id(host)
    engine = sa.create_engine(
        database.url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        conn = engine.connect()
        try:
            member = _lock_and_insert(conn, member_id, host, grpc_addr)
        except BaseException:
            conn.close()
            raise
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise errors.Unavailable(f"joining the cluster failed: {_first_line(exc)}") from exc
    except BaseException:
        engine.dispose()
        raise
    return Membership(engine, conn, member)


def _lock_and_insert(conn: Connection, member_id: str, host: str, grpc_addr: str) -> Member:
    conn.execute(
        sa.text("SELECT set_config('application_name', :name, false)"),
        {"name": f"automations member {member_id}"[:63]},
    )
    for name, value in _KEEPALIVES:
        conn.execute(
            sa.text("SELECT set_config(:name, :value, false)"), {"name": name, "value": value}
        )
    key = _take_fresh_key(conn)
    table = tables.cluster_members
    # We hold this key's lock, so a row still naming it is a dead member's: it goes.
    conn.execute(sa.delete(table).where(table.c.lock_key == key, table.c.id != member_id))
    existing = conn.execute(sa.select(*_MEMBER_COLUMNS).where(table.c.id == member_id)).first()
    if existing is not None:
        _take_over(conn, Member(*existing), key)
    values = {
        "host": host,
        "pid": os.getpid(),
        "grpc_addr": grpc_addr,
        "lock_key": key,
        "started": creation.PG_NOW,
        "heartbeat": creation.PG_NOW,
    }
    if existing is None:
        conn.execute(sa.insert(table).values(id=member_id, **values))
    else:
        conn.execute(
            sa.update(table)
            .where(table.c.id == member_id, table.c.lock_key == existing.lock_key)
            .values(**values)
        )
    row = conn.execute(sa.select(*_MEMBER_COLUMNS).where(table.c.id == member_id)).one()
    return Member(*row)


def _take_fresh_key(conn: Connection) -> int:
    while True:
        key = _KEY_FLOOR + secrets.randbits(62)
        if conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar():
            return key


def _take_over(conn: Connection, holder: Member, key: int) -> None:
    """Checks that the member holding our id is dead (its lock is free), or refuses."""
    if holder.lock_key == key:
        return  # we hold its key: it is dead
    if not conn.execute(sa.select(sa.func.pg_try_advisory_lock(holder.lock_key))).scalar():
        conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
        raise errors.FailedPrecondition(
            f"member id {holder.id!r} is in use by a live replica on {holder.host} pid "
            f"{holder.pid} gRPC {holder.grpc_addr}: stop it first, or join under another id",
            reason="MEMBER_ID_IN_USE",
        )
    conn.execute(sa.select(sa.func.pg_advisory_unlock(holder.lock_key)))


def _first_line(exc: sa.exc.SQLAlchemyError) -> str:
    """The driver's own message, without SQLAlchemy's SQL echo and help link."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__
