"""An engine that cannot start says why in one line and exits non-zero, without a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.integration.engine_process import EngineProcess, serve_refused

TWO_FRONTS = {"AUTOMATIONS_WEBHOOK_PROCESSES": "2"}


def test_a_database_it_cannot_write_stops_the_start_with_one_clear_line(tmp_path: Path) -> None:
    EngineProcess(tmp_path).start().stop()  # a database with its schema
    read_only = f"sqlite:///file:{tmp_path / 'automations.db'}?mode=ro&uri=true"
    done = serve_refused(read_only, tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("automations serve")]
    assert line.startswith("automations serve: cannot start: the database")
    assert line.endswith("cannot be written: attempt to write a readonly database")


def test_a_webhook_port_in_use_stops_the_start_even_with_several_webhook_processes(
    tmp_path: Path,
) -> None:
    # held by another program
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        addr = f"127.0.0.1:{other.getsockname()[1]}"
        done = serve_refused(
            f"sqlite:///{tmp_path / 'second.db'}", tmp_path, "--http-addr", addr, env=TWO_FRONTS
        )
    assert done.returncode == 1
    assert f"cannot serve webhooks on http_addr {addr}" in done.stderr
    # held by another engine's webhook processes (sockets sharing the port with SO_REUSEPORT)
    (tmp_path / "first").mkdir()
    first = EngineProcess(tmp_path / "first", env=TWO_FRONTS).start()
    try:
        done = serve_refused(
            f"sqlite:///{tmp_path / 'second.db'}",
            tmp_path,
            "--http-addr",
            first.http_addr,
            env=TWO_FRONTS,
        )
        assert done.returncode == 1
        assert f"cannot serve webhooks on http_addr {first.http_addr}" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        first.stop()
