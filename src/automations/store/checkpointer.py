"""Background WAL checkpoints for SQLite, off the writer's path.

With SQLite's own ``wal_autocheckpoint``, the commit that crosses the mark copies the whole WAL back
into the database file and syncs it before it returns: the single writer, and every event and
firing queued behind it, waits 30-50 ms (measured at 1,000 firings/s: the tail of both the event
ack and the action dispatch latency). Here a thread with its own connection runs a PASSIVE
checkpoint when the WAL has grown (see ``WalCheckpointer``) instead. A PASSIVE checkpoint never blocks the writer: it
copies the frames no reader still needs, and the writer restarts the WAL from its beginning at its
next transaction once every frame is copied. The writer keeps ``wal_autocheckpoint`` as a safety
net, set well above what the thread lets the WAL grow to.

The ``-shm`` file is opened once and its descriptor kept until every connection of the process is
closed (:meth:`WalCheckpointer.close`). Closing *any* descriptor of a file drops all of the
process's POSIX locks on it (SQLite's "How To Corrupt An SQLite Database File", section 2.2): a
checkpointer that opened and closed the ``-shm`` file at each look silently released the locks
SQLite's own connections held on it, so another process opening the database (an operator's
``sqlite3`` peeking in) could re-initialise the shared memory the engine had mapped, and the
engine died of SIGBUS.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading

logger = logging.getLogger(__name__)

# The wal-index header (native byte order): mxFrame, the last valid frame of the WAL, at byte 16;
# nBackfill, the frames already copied into the database, at byte 96 (the checkpoint info).
_U32 = struct.Struct("=I")
_MX_FRAME = 16
_N_BACKFILL = 96
_CKPT_INFO_END = 100


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a database file when the WAL has grown enough.

    Every ``poll`` seconds it reads how many WAL frames are not yet copied back (two integers of
    the wal-index header in the ``-shm`` file, see https://www.sqlite.org/walformat.html), and
    checkpoints when there are ``min_frames`` or more. Small and frequent under load: a
    checkpoint syncs the database file, and a long one slows the commits that run meanwhile
    (measured at 1,000 firings/s: checkpoints of ~3,000 pages every 0.2 s left 10-15 ms commits
    every ~0.6 s; of ~500 pages, under 10 ms). None for a trickle of events until the pages add
    up: a sync after each small commit adds ~0.5 ms to every ack at 20 events/s.

    Args:
        path: The SQLite database file.
        poll: Seconds between two looks at the WAL.
        min_frames: WAL frames (pages) that start a checkpoint.
    """

    def __init__(
        self,
        path: str,
        *,
        poll: float = 0.01,
        min_frames: int = 256,
    ) -> None:
        self._path = path
        self._poll = poll
        self._min_frames = min_frames
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shm: int | None = None
        self._shm_lock = threading.Lock()
        self.checkpoints = 0
        """Checkpoints run so far (for tests and debugging)."""

    def start(self) -> None:
        """Starts the thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name="automations-wal-checkpointer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread after its current checkpoint (the ``-shm`` descriptor stays open)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def close(self) -> None:
        """Closes the ``-shm`` descriptor: call it only once every connection is closed."""
        self.stop()
        with self._shm_lock:
            if self._shm is not None:
                os.close(self._shm)
                self._shm = None

    def pending_frames(self) -> int | None:
        """WAL frames not yet copied into the database file, or None if unknown."""
        with self._shm_lock:
            if self._shm is None:
                try:  # opened once: see the module docstring
                    self._shm = os.open(self._path + "-shm", os.O_RDONLY)
                except OSError:
                    return None
            try:
                header = os.pread(self._shm, _CKPT_INFO_END, 0)
            except OSError:
                return None
        if len(header) < _CKPT_INFO_END:
            return None
        max_frame: int = _U32.unpack_from(header, _MX_FRAME)[0]
        backfilled: int = _U32.unpack_from(header, _N_BACKFILL)[0]
        return max(0, max_frame - backfilled)

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        failing = False
        try:
            while not self._stop.wait(self._poll):
                pending = self.pending_frames()
                if pending is None or pending < self._min_frames:
                    continue
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    # the writer's own autocheckpoint still bounds the WAL meanwhile
                    if not failing:
                        logger.warning("background WAL checkpoint failed: %s", exc)
                    failing = True
                    continue
                if failing:
                    logger.info("background WAL checkpoints work again")
                    failing = False
                self.checkpoints += 1
        finally:
            conn.close()
