"""An operator peeking into the SQLite file while the engine writes never harms the engine.

Other processes opening the database (``sqlite3 automations.db``) take part in SQLite's locking
of the WAL index: if the engine ever dropped its own locks on the ``-shm`` file, such a reader
could re-initialise the shared memory the engine has mapped, and the engine would die of SIGBUS.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

import automations
from tests.integration.engine_process import EngineProcess

WRITE_SECONDS = 8.0
READER_PAUSE_SECONDS = 0.02


def publish_until(client: automations.Client, stop: threading.Event, acked: list[str]) -> None:
    while not stop.is_set():
        batch = [
            {
                "id": str(uuid.uuid4()),
                "event": "peek.test",
                "resource": {"prefect.resource.id": f"r.{i % 50}"},
                "payload": {"n": i},
            }
            for i in range(200)
        ]
        results = client.publish(batch, raise_on_rejected=True)
        acked.extend(r.event_id for r in results)


def peek(database: Path, stop: threading.Event, reads: list[int]) -> None:
    """Opens a read-only connection, reads, closes it: over and over, as an operator might."""
    while not stop.is_set():
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            reads.append(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.OperationalError:
            pass  # busy: a reader may be refused, never the engine harmed
        finally:
            conn.close()
        time.sleep(READER_PAUSE_SECONDS)


def test_readers_opening_the_file_during_writes_leave_the_engine_running(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path).start()
    database = tmp_path / "automations.db"
    stop = threading.Event()
    acked: list[str] = []
    reads: list[int] = []
    try:
        with automations.Client(engine.grpc_addr) as client:
            threads = [
                threading.Thread(target=publish_until, args=(client, stop, acked)),
                threading.Thread(target=peek, args=(database, stop, reads)),
                threading.Thread(target=peek, args=(database, stop, reads)),
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + WRITE_SECONDS
            while time.monotonic() < deadline and engine.proc is not None:
                assert engine.proc.poll() is None, f"the engine died:\n{engine.log()}"
                time.sleep(0.1)
            stop.set()
            for thread in threads:
                thread.join(60)
            assert engine.proc is not None and engine.proc.poll() is None, engine.log()
            assert len(reads) > 50 and len(acked) > 1000
            stored = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
            try:
                count = stored.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                stored.close()
            assert count == len(acked)
    finally:
        stop.set()
        engine.stop()
