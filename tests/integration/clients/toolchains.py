"""Makes the Node and Go toolchains the client tests need available, or says why they cannot be.

Node: ``npm ci`` into ``clients/node/node_modules`` when it is missing (npm comes with Node).
Go: ``apt-get install`` of Debian's golang-go and the grpc-go / protobuf-go sources when ``go`` is
missing and apt-get can be used (root). Each returns a reason string instead of raising, so that
the tests can skip with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NODE_DIR = ROOT / "clients" / "node"
GO_DIR = ROOT / "clients" / "go"
GO_PACKAGES = (
    "golang-go",
    "golang-google-grpc-dev",
    "golang-google-protobuf-dev",
    "golang-github-golang-protobuf-1-5-dev",
    "protoc-gen-go",
    "protoc-gen-go-grpc",
)
GO_SOURCES = Path("/usr/share/gocode/src/google.golang.org/grpc")


def _say(text: str) -> None:
    print(f"[clients] {text}", file=sys.stderr)


def ensure_node() -> str | None:
    """Returns None when ``node`` and ``clients/node/node_modules`` are ready, else why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed (install Node.js 20+ to run the Node client tests)"
    if (NODE_DIR / "node_modules" / ".bin" / "tsx").exists():
        return None
    _say("clients/node/node_modules missing: npm ci")
    try:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        return f"npm ci failed in clients/node: {exc}\n{output.decode(errors='replace')[-2000:]}"
    return None


def ensure_go() -> str | None:
    """Returns None when ``go`` and the Debian Go sources are ready, else why not."""
    if shutil.which("go") is not None and GO_SOURCES.is_dir():
        return None
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "go (and Debian's grpc-go sources) not installed, and apt-get is not usable here"
    _say(f"installing {' '.join(GO_PACKAGES)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", *GO_PACKAGES],
            check=True,
            timeout=600,
            capture_output=True,
            env=env,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        return f"apt-get install of Go failed: {exc}\n{output.decode(errors='replace')[-2000:]}"
    if shutil.which("go") is None or not GO_SOURCES.is_dir():
        return "apt-get ran but go or the grpc-go sources are still missing"
    return None


def build_go_example(example: str, output: Path) -> None:
    """Builds clients/go/examples/<example> offline (GOPATH mode over /usr/share/gocode)."""
    subprocess.run(
        [str(GO_DIR / "scripts" / "build-offline.sh"), str(output), example],
        check=True,
        timeout=300,
        capture_output=True,
    )
