"""An engine that cannot start says why in one line and exits non-zero, without a traceback."""

from __future__ import annotations

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
