"""The command line takes the API token from the environment or a file, and warns about --token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.engine_process import EngineProcess

TOKEN = "cli-token-secret"


def automations(
    engine: EngineProcess, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")}
    return subprocess.run(
        [sys.executable, "-m", "automations.cli.main", "automation", "list", "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, "AUTOMATIONS_SERVER": engine.grpc_addr, **env},
    )


def test_the_token_comes_from_the_environment_a_file_or_a_flag_with_a_warning(
    tmp_path: Path,
) -> None:
    engine = EngineProcess(tmp_path, env={"AUTOMATIONS_API_TOKEN": TOKEN}).start()
    try:
        from_env = automations(engine, env={"AUTOMATIONS_API_TOKEN": TOKEN})
        assert (from_env.returncode, from_env.stdout.strip()) == (0, "[]")
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        from_file = automations(engine, "--token-file", str(token_file), env={})
        assert (from_file.returncode, from_file.stdout.strip()) == (0, "[]")
        from_flag = automations(engine, "--token", TOKEN, env={})
        assert from_flag.returncode == 0
        assert "--token is visible in the process list" in from_flag.stderr
        without = automations(engine, env={})
        assert without.returncode != 0 and "UNAUTHENTICATED" in without.stderr + without.stdout
    finally:
        engine.stop()
