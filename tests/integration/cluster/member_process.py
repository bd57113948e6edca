"""A cluster member in a process of its own, driven line by line (for kill -9 and SIGSTOP tests).

``python -m tests.integration.cluster.member_process URL MEMBER_ID LEASE PARTITION...`` joins the
cluster as MEMBER_ID, acquires the partitions with LEASE-second leases (bounding its stalled
transactions to LEASE too), prints ``{"joined": ..., "grants": {partition: epoch}}`` and then
answers commands read from stdin, one JSON line each:

- ``fence RAW_SEQ``: one transaction: fence every partition it acquired with raw_seq=RAW_SEQ,
  commit; prints ``committed`` or ``lost <partitions>``.
- ``begin RAW_SEQ``: opens a transaction and fences it, prints ``fenced`` (or ``lost``) and keeps
  the transaction open; ``commit`` then commits it and prints ``committed`` or ``failed <why>``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from automations.cluster import fencing, leases, membership
from automations.store.database import Database


def say(line: str) -> None:
    print(line, flush=True)


def main(url: str, member_id: str, lease: float, partitions: list[int]) -> None:
    database = Database(url)
    fencing.bound_stalled_transactions(database.writer, lease)
    member = membership.join(database, grpc_addr="127.0.0.1:1", member_id=member_id)
    with database.write() as conn:
        grants = leases.acquire(conn, member.id, partitions, lease=lease)
    held = {grant.partition: grant.epoch for grant in grants}
    say(json.dumps({"joined": member.id, "lock_key": member.member.lock_key, "grants": held}))
    open_conn: Connection | None = None
    for line in sys.stdin:
        command, *args = line.split()
        checkpoints = [
            fencing.Checkpoint(partition, epoch, raw_seq=int(args[0]) if args else None)
            for partition, epoch in held.items()
        ]
        if command == "fence":
            try:
                with database.write() as conn:
                    fencing.fence(conn, member.id, checkpoints)
                say("committed")
            except fencing.OwnershipLost as lost:
                say(f"lost {list(lost.partitions)}")
        elif command == "begin":
            open_conn = database.writer.connect()
            open_conn.begin()
            try:
                fencing.fence(open_conn, member.id, checkpoints)
                say("fenced")
            except fencing.OwnershipLost as lost:
                say(f"lost {list(lost.partitions)}")
        elif command == "commit":
            assert open_conn is not None
            try:
                open_conn.commit()
                say("committed")
            except Exception as exc:  # noqa: BLE001 - reported to the test
                say(f"failed {type(exc).__name__}")
        elif command == "leave":
            member.leave()
            say("left")
            return


REPO = Path(__file__).resolve().parents[3]


class MemberProcess:
    """The test's side: starts the member process, sends commands, reads its answers."""

    def __init__(self, url: str, member_id: str, lease: float, partitions: list[int]) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.integration.cluster.member_process",
                url,
                member_id,
                str(lease),
                *(str(p) for p in partitions),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._joined: dict[str, Any] | None = None

    def ready(self) -> dict[str, Any]:
        """Waits until it joined: ``{"joined": id, "lock_key": key, "grants": {partition: epoch}}``."""
        if self._joined is None:
            self._joined = json.loads(self.answer(timeout=30))
        return self._joined

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())

    def answer(self, timeout: float = 10.0) -> str:
        """The next line the member printed."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the member printed nothing in {timeout} s") from None

    def send(self, command: str) -> None:
        """Sends one command line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def signal(self, signum: signal.Signals) -> None:
        """Sends a signal to the member (SIGKILL, SIGSTOP, SIGCONT)."""
        os.kill(self.proc.pid, signum)

    def close(self) -> None:
        """Kills the member if it still runs (SIGCONT first, in case it is stopped)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), [int(p) for p in sys.argv[4:]])
