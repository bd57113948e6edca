"""Database engines, connection settings, migrations and health.

One :class:`Database` owns two SQLAlchemy engines on the same URL:

- ``writer``: used by the engine's single writer thread. On SQLite its transactions start with
  ``BEGIN IMMEDIATE`` (the write lock is taken up front, so a read-then-write transaction can
  never fail half-way with ``SQLITE_BUSY`` on lock upgrade); its pool is small: there is one writer.
- ``reader``: for queries (API reads, the outbox dispatcher's listing...). On SQLite with WAL,
  readers never block the writer nor wait for it.

Every repository function takes a ``Connection`` and never commits: the caller owns the transaction,
which is what lets the writer group-commit many client batches in one transaction.

SQLite connections get ``journal_mode=WAL``, ``synchronous=NORMAL`` (durable across process crashes,
the last transactions may be lost on power loss: the usual WAL trade-off), ``busy_timeout``,
``foreign_keys=ON``, a memory temp store, a 64 MiB page cache, memory-mapped reads and a larger
WAL auto-checkpoint interval. pysqlite's own implicit transaction handling is turned off (it
does not begin before SELECTs) and we emit ``BEGIN`` ourselves, as SQLAlchemy's documentation
recommends. ``postgresql://`` and ``postgres://`` URLs are mapped to the psycopg 3 driver.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, pool
from sqlalchemy.engine import URL, Connection, Engine

from automations.domain import errors
from automations.store import checkpointer, tables

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = pathlib.Path(__file__).with_name("migrations")
"""The Alembic script directory shipped inside the package."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long an SQLite connection waits for a lock before failing with ``database is locked``."""

_PG_MIGRATION_LOCK = (
    0x6175746F  # "auto": pg_advisory_xact_lock key serializing concurrent migrations
)


def normalize_url(url: str | URL) -> URL:
    """Turns a user-supplied database URL (or a bare file path) into a SQLAlchemy URL.

    Every PostgreSQL URL (``postgresql://``, ``postgres://``, ``postgresql+<driver>://``) selects
    the psycopg 3 driver, every SQLite one pysqlite; a string without ``://`` is taken as an SQLite
    file path.

    Args:
        url: A SQLAlchemy URL, a libpq-style ``postgresql://`` URL, or a file path.

    Returns:
        The URL to give ``create_engine``.
    """
    if isinstance(url, URL):
        parsed = url
    else:
        text = url.strip()
        if "://" not in text and not text.startswith("sqlite:"):
            return URL.create("sqlite+pysqlite", database=text)
        parsed = sa.make_url(text)
    backend = parsed.drivername.split("+", 1)[0]
    if backend in ("postgresql", "postgres"):
        # The store drives psycopg 3 directly on its hot paths (COPY, binary arrays).
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+pysqlite")
    return parsed


def _is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


class Database:
    """The two engines (writer, reader) of one database, plus migrations and health.

    Attributes:
        url: The normalized URL (the password, if any, is kept; render it with
            ``url.render_as_string(hide_password=True)``).
        dialect: ``"sqlite"`` or ``"postgresql"``.
        writer: The engine of the single writer thread.
        reader: The engine for reads. For an in-memory SQLite database (``sqlite://``) it is the
            writer itself: one shared connection, so use it from one thread at a time (tests,
            simulations).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        reader_pool_size: int = 4,
        sqlite_synchronous: str = "NORMAL",
        sqlite_wal_autocheckpoint: int = 10_000,
    ) -> None:
        """Creates the engines; connects lazily.

        Args:
            url: See :func:`normalize_url`.
            echo: Log every SQL statement (debugging).
            reader_pool_size: Connections kept for readers.
            sqlite_synchronous: SQLite's ``synchronous`` pragma (NORMAL, or FULL to survive a
                power loss too).
            sqlite_wal_autocheckpoint: WAL pages after which a commit checkpoints (SQLite).
        """
        if sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise errors.InvalidArgument("sqlite_synchronous", "must be OFF, NORMAL, FULL or EXTRA")
        self._sqlite_pragmas = (sqlite_synchronous.upper(), int(sqlite_wal_autocheckpoint))
        self._checkpointer: checkpointer.WalCheckpointer | None = None
        self._held: tuple[int, Connection] | None = None  # see hold_write_connection
        self._in_held: Any = None  # the kept driver connection while its transaction is open
        self._on_dispose: list[Callable[[], None]] = []
        self.url = normalize_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            self._init_sqlite(echo, reader_pool_size)
        elif self.dialect == "postgresql":
            # pre-ping: one round trip per checkout (microseconds locally, per group commit, not
            # per event) so that a restarted server costs no failed batch.
            self.writer = sa.create_engine(
                self.url, echo=echo, pool_size=2, max_overflow=2, pool_pre_ping=True
            )
            self.reader = sa.create_engine(
                self.url,
                echo=echo,
                pool_size=reader_pool_size,
                max_overflow=reader_pool_size,
                pool_pre_ping=True,
            )
        else:
            raise errors.InvalidArgument(
                "database_url",
                f"unsupported database {self.dialect!r}: use sqlite:///<file> or postgresql://...",
            )

    def _init_sqlite(self, echo: bool, reader_pool_size: int) -> None:
        if _is_sqlite_memory(self.url):
            # One connection shared by every thread; the writer and reader are the same engine.
            self.writer = sa.create_engine(
                self.url,
                echo=echo,
                poolclass=pool.StaticPool,
                connect_args={"check_same_thread": False},
            )
            _configure_sqlite(self.writer, begin="BEGIN IMMEDIATE", pragmas=self._sqlite_pragmas)
            self.reader = self.writer
            return
        if self.url.database:
            pathlib.Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        self.writer = sa.create_engine(
            self.url,
            echo=echo,
            poolclass=pool.QueuePool,
            pool_size=1,
            max_overflow=2,
            connect_args={"check_same_thread": False},
        )
        pragmas = self._sqlite_pragmas
        _configure_sqlite(self.writer, begin="BEGIN IMMEDIATE", pragmas=pragmas, joins=self._joins)
        self.reader = sa.create_engine(
            self.url,
            echo=echo,
            poolclass=pool.QueuePool,
            pool_size=reader_pool_size,
            max_overflow=reader_pool_size,
            connect_args={"check_same_thread": False},
        )
        _configure_sqlite(self.reader, begin="BEGIN", pragmas=self._sqlite_pragmas)

    # ------------------------------------------------------------------------------ transactions

    def hold_write_connection(self) -> None:
        """Keeps a write connection for the calling thread's transactions (SQLite files only).

        For the single writer, which commits a group every few hundred microseconds under
        webhook load: taking a connection from the pool and giving it back cost ~15 us per
        transaction. Other threads' transactions still take one from the pool. Released by
        :meth:`release_write_connection` (or :meth:`dispose`).
        """
        if self.dialect == "sqlite" and not _is_sqlite_memory(self.url):
            self.release_write_connection()
            try:
                self._held = (threading.get_ident(), self.writer.connect())
            except sa.exc.SQLAlchemyError:  # its transactions take pooled ones, as others do
                logger.warning("keeping a write connection failed", exc_info=True)

    def release_write_connection(self) -> None:
        """Gives back what :meth:`hold_write_connection` kept."""
        held, self._held = self._held, None
        if held is not None:
            held[1].close()

    def _joins(self, driver: Any) -> bool:
        return driver is self._in_held  # its transaction is open (``_write_held``)

    @contextlib.contextmanager
    def _write_held(self, thread: int, conn: Connection) -> Iterator[Connection]:
        """A transaction on the kept connection, begun and committed through the driver.

        SQLAlchemy's (object, events, commit path) cost ~20 us per group for nothing: a group's
        statements go to the driver (``sql.dbapi``). One sent through SQLAlchemy makes it begin
        its own inside this one (``_joins``: no BEGIN sent), whose commit then commits.
        """
        if conn.closed or conn.invalidated:  # closed after a failure: a fresh one
            conn = self.writer.connect()
            self._held = (thread, conn)
        driver: Any = conn.connection.dbapi_connection
        _driver_run(driver, "BEGIN IMMEDIATE")
        self._in_held = driver
        try:
            yield conn
            if conn.in_transaction():  # SQLAlchemy began one inside this one: it commits
                conn.commit()
            else:
                _driver_run(driver, "COMMIT")
        except BaseException:
            if driver.in_transaction:  # e.g. a refused COMMIT: never left open in the pool
                with contextlib.suppress(sqlite3.Error):
                    driver.rollback()
            conn.close()  # whatever state the failure left it in, the next one starts clean
            raise
        finally:
            self._in_held = None

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """Opens a write transaction: committed when the block ends, rolled back if it raises.

        Yields:
            A connection inside a transaction on the writer engine.
        """
        held = self._held
        if held is not None and held[0] == threading.get_ident() and self._in_held is None:
            with self._write_held(*held) as conn:
                yield conn
            return
        # (a write inside a write on the writer thread takes a pooled connection, as before)
        with self.writer.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """Opens a read transaction on the reader engine, rolled back at the end.

        On SQLite the whole block reads one snapshot; on PostgreSQL (READ COMMITTED) each statement
        does.

        Yields:
            A connection inside a transaction on the reader engine.
        """
        with self.reader.connect() as conn, conn.begin() as txn:
            try:
                yield conn
            finally:
                if txn.is_active:
                    txn.rollback()

    # -------------------------------------------------------------------------------- migrations

    def alembic_config(self) -> Config:
        """Returns an Alembic config pointing at the packaged migrations and this database."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        # Alembic's config is ConfigParser-based: '%' must be doubled.
        cfg.set_main_option(
            "sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        return cfg

    def migrate(self, revision: str = "head") -> None:
        """Upgrades the schema to ``revision``: idempotent, one transaction, safe concurrently.

        Args:
            revision: The Alembic target revision.

        Raises:
            errors.Unavailable: The database could not be reached or changed; the message says why.
        """
        cfg = self.alembic_config()
        try:
            with self.writer.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except sa.exc.SQLAlchemyError as exc:
            raise errors.Unavailable(
                f"migrating the database {self.url.render_as_string(hide_password=True)} to "
                f"{revision} failed: {_first_line(exc)}"
            ) from None

    def check_writable(self) -> None:
        """Checks that the database can be written (at start, before anything is served).

        A statement that would write, and changes nothing: a read-only SQLite file (or a
        PostgreSQL server in read-only mode) refuses it as it would refuse the first commit.

        Raises:
            errors.Unavailable: The database cannot be written; the message says why.
        """
        probe = tables.engine_state
        try:
            with self.write() as conn:
                conn.execute(sa.delete(probe).where(probe.c.kind == _WRITE_PROBE_KIND))
        except sa.exc.SQLAlchemyError as exc:
            raise errors.Unavailable(
                f"the database {self.url.render_as_string(hide_password=True)} cannot be "
                f"written: {_first_line(exc)}"
            ) from None

    def current_revision(self) -> str | None:
        """Returns the schema revision the database is at, or None for an empty database."""
        with self.reader.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str | None:
        """Returns the newest revision shipped with this code."""
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    # ------------------------------------------------------------------------------------ health

    def ping(self) -> None:
        """Checks that the database answers a trivial query.

        Raises:
            errors.Unavailable: The database cannot be reached (the cause is chained).
        """
        try:
            with self.reader.connect() as conn:
                conn.execute(sa.text("SELECT 1")).scalar_one()
        except sa.exc.SQLAlchemyError as exc:
            raise errors.Unavailable(f"database unavailable: {exc.__class__.__name__}") from exc

    def probe_write(self) -> None:
        """Commits a write that changes nothing: fails while the database takes no writes.

        Unlike :meth:`ping`, it needs room to write (a WAL frame, a new row version), so a full
        disk fails it; health uses it while commits fail, to see when they would succeed again.

        Raises:
            errors.Unavailable: The write failed.
        """
        try:
            with self.write() as conn:
                conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
        except sa.exc.SQLAlchemyError as exc:
            raise errors.Unavailable(f"database takes no writes: {_first_line(exc)}") from exc

    def start_background_checkpoints(self, pages: int) -> None:
        """Checkpoints the WAL from a thread of its own once ``pages`` pages are waiting (SQLite).

        Keeps the copy of the WAL into the database file off the writer's commits (see
        ``store.checkpointer``); the writer's ``wal_autocheckpoint`` stays as the safety net.
        Does nothing for PostgreSQL, an in-memory database, or ``pages <= 0``.
        """
        if (
            self.dialect != "sqlite"
            or _is_sqlite_memory(self.url)
            or pages <= 0
            or self._checkpointer is not None
        ):
            return
        assert self.url.database is not None
        self._checkpointer = checkpointer.WalCheckpointer(self.url.database, min_frames=pages)
        self._checkpointer.start()

    def on_dispose(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` last when the database is disposed (e.g. to release a lock)."""
        self._on_dispose.append(callback)

    def dispose(self) -> None:
        """Stops background checkpoints; closes every pooled connection of both engines."""
        self.release_write_connection()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()
        if self._checkpointer is not None:
            # only now: closing a descriptor of the -shm file drops the process's locks on it
            self._checkpointer.close()
            self._checkpointer = None
        while self._on_dispose:
            self._on_dispose.pop()()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


_WRITE_PROBE_KIND = "automations.write-probe"
"""A state kind no record has: ``check_writable``'s statement matches nothing."""


def _first_line(exc: sa.exc.SQLAlchemyError) -> str:
    """The driver's own message, without SQLAlchemy's SQL echo and help link."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


def _enable_wal(cursor: Any) -> None:
    """Switches the database file to WAL (persistent: a no-op once done).

    Changing the journal mode fails at once with ``database is locked`` while another connection
    holds a lock: SQLite does not call the busy handler for it. That happens when several
    connections open a fresh file together, so retry for up to the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _driver_run(driver: Any, statement: str) -> None:
    """Runs a statement on an ``sqlite3`` connection; its failure as SQLAlchemy's own error."""
    try:
        driver.execute(statement)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


_Joins = Callable[[Any], bool] | None


def _configure_sqlite(
    engine: Engine, *, begin: str, pragmas: tuple[str, int], joins: _Joins = None
) -> None:
    """An SQLite engine's connections, and its BEGIN (not sent in a transaction it ``joins``)."""
    memory = _is_sqlite_memory(engine.url)
    synchronous, autocheckpoint = pragmas

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite: we emit BEGIN ourselves (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not memory:
                _enable_wal(cursor)
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
            if not memory:
                # The safety net: the engine checkpoints from a thread of its own long before
                # (``store.checkpointer``), so no commit waits 30-50 ms for a checkpoint of ~40 MB.
                # When that thread is off, ~40 MB (not SQLite's 4 MB): the event log's random-id
                # primary key dirties many pages per batch, and fewer checkpoints write each page
                # fewer times (measured: +25% append throughput). The WAL is truncated after.
                cursor.execute(f"PRAGMA wal_autocheckpoint={autocheckpoint}")
                cursor.execute("PRAGMA journal_size_limit=67108864")
                # Memory-mapped reads, capped at 64 MiB: mapped pages count as the engine's resident
                # memory, and 256 MiB put 1,000,000 live buckets at 1,066 MB RSS; at 64 MiB they
                # take 1,012 MB (902 MB after a restart) with no loss of ingest throughput.
                cursor.execute("PRAGMA mmap_size=67108864")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        driver: Any = conn.connection.dbapi_connection
        if joins is not None and joins(driver):
            return
        # Straight to the driver (autocommit mode, above): SQLAlchemy's statement path cost ~20 us
        # per transaction. A refused BEGIN (busy past the timeout, a read-only file...) is raised
        # as SQLAlchemy's own error, not run again (that waited the busy timeout twice).
        _driver_run(driver, begin)
