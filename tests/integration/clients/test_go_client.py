"""The Go client (Debian's toolchain, built offline) against a real engine, and its drift check."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.clients import toolchains
from tests.integration.clients.quickstart_checks import check_quickstart_output
from tests.integration.engine_process import EngineProcess


# installing Go with apt-get and a cold build take a few minutes at most
@pytest.mark.timeout(900)
def test_go_quickstart_streams_10000_events_and_lists_one_firing_per_customer(
    go_quickstart: Path, engine: EngineProcess
) -> None:
    done = subprocess.run(
        [str(go_quickstart), engine.grpc_addr], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    check_quickstart_output(done.stdout, engine.grpc_addr)


@pytest.mark.timeout(900)
def test_go_generated_code_matches_protos(go_quickstart: Path) -> None:
    if shutil.which("protoc-gen-go") is None or shutil.which("protoc-gen-go-grpc") is None:
        pytest.skip("protoc-gen-go / protoc-gen-go-grpc not installed")
    done = subprocess.run(
        [str(toolchains.GO_DIR / "scripts" / "check-gen.sh")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
