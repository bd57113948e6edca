"""An engine that cannot start says why in one line and exits non-zero, without a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.integration.engine_process import EngineProcess


def test_a_database_it_cannot_write_stops_the_start_with_one_clear_line(tmp_path: Path) -> None:
    EngineProcess(tmp_path).start().stop()  # a database with its schema
    read_only = f"sqlite:///file:{tmp_path / 'automations.db'}?mode=ro&uri=true"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "automations.cli.main",
            "serve",
            "--no-executors",
            "--grpc-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "",
            "--database-url",
            read_only,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("automations serve")]
    assert line.startswith("automations serve: cannot start: the database")
    assert line.endswith("cannot be written: attempt to write a readonly database")


def _serve_on_http_port(tmp_path: Path, http_addr: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "automations.cli.main",
            "serve",
            "--no-executors",
            "--grpc-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "",
            "--http-addr",
            http_addr,
            "--database-url",
            f"sqlite:///{tmp_path / 'second.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "AUTOMATIONS_WEBHOOK_PROCESSES": "2"},
    )


def test_a_webhook_port_in_use_stops_the_start_even_with_several_webhook_processes(
    tmp_path: Path,
) -> None:
    # held by another program
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        addr = f"127.0.0.1:{other.getsockname()[1]}"
        done = _serve_on_http_port(tmp_path, addr)
    assert done.returncode == 1
    assert f"cannot serve webhooks on http_addr {addr}" in done.stderr
    # held by another engine's webhook processes (sockets sharing the port with SO_REUSEPORT)
    (tmp_path / "first").mkdir()
    first = EngineProcess(tmp_path / "first", env={"AUTOMATIONS_WEBHOOK_PROCESSES": "2"}).start()
    try:
        done = _serve_on_http_port(tmp_path, first.http_addr)
        assert done.returncode == 1
        assert f"cannot serve webhooks on http_addr {first.http_addr}" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        first.stop()
