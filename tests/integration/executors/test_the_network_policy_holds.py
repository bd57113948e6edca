"""No bundled executor reaches a cloud metadata address, however the request is dressed up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def namespaces_available() -> str:
    if os.geteuid() != 0:
        return "network namespaces need root (unshare -n)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    done = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    return "" if done.returncode == 0 else f"unshare -n failed: {done.stderr.strip()}"


def test_metadata_is_refused_directly_through_redirects_and_in_ipv6_forms(tmp_path: Path) -> None:
    unavailable = namespaces_available()
    if unavailable:
        print(f"skipped: {unavailable}")
        pytest.skip(unavailable)
    script = (
        "ip link set lo up && ip addr add 169.254.169.254/32 dev lo && "
        f"exec {sys.executable} -m tests.integration.executors.network_namespace_probe {tmp_path}"
    )
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["canary_hits"] == []
    for what, outcome in report["results"].items():
        assert outcome.startswith("PERMISSION_DENIED"), (what, outcome)
    assert report["results"]["notify: json redirected to it"].endswith("NOTIFICATION_URL_FORBIDDEN")
    assert report["results"]["webhook: the metadata address"].endswith("WEBHOOK_URL_FORBIDDEN")
