"""Generates the Python protobuf/gRPC code from protos/ (``make gen``).

Runs ``python -m grpc_tools.protoc`` (pinned in pyproject's dev extra) with mypy-protobuf for the
type stubs, writing ``automations/v1`` and ``automations/executor/v1`` under ``src/``. The proto
package path equals the Python package path, so the generated imports
(``from automations.v1 import event_pb2``) work as they are.

The vendored ``protos/google/{api,rpc}`` files are only compiled against, never generated: their
Python modules (``google.api.field_behavior_pb2``, ``google.rpc.status_pb2``, ...) come from the
``googleapis-common-protos`` package, which grpcio-status depends on.

The output is deterministic: stale files are removed first, files are compiled in sorted order and
the ``__init__.py`` files have fixed contents, so ``make check-gen`` (regenerate, then
``git diff --exit-code``) is clean whenever the committed code matches the protos.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT = ROOT / "src"
# Our own proto packages (directories under protos/), generated into src/<same path>.
PACKAGES = ("automations/v1", "automations/executor/v1")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
INIT_TEXT = '"""Generated protobuf and gRPC code for {package} (``make gen``); do not edit."""\n'
PARENT_INIT_TEXT = '"""The {package} proto packages (code is in the version packages)."""\n'


def _clean(package_dir: Path) -> None:
    if not package_dir.is_dir():
        return
    for path in sorted(package_dir.iterdir()):
        if path.is_file() and path.name.endswith(GENERATED_SUFFIXES):
            path.unlink()


def _protoc(files: list[str]) -> None:
    plugin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    # protoc finds protoc-gen-mypy / protoc-gen-mypy_grpc on PATH: use the ones of this venv.
    env["PATH"] = f"{plugin_dir}{os.pathsep}{env.get('PATH', '')}"
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *files,
    ]
    # grpc_tools adds its bundled well-known types (google/protobuf/*.proto) to the include path.
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def _write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def main() -> int:
    files: list[str] = []
    for package in PACKAGES:
        package_dir = OUT / package
        _clean(package_dir)
        package_dir.mkdir(parents=True, exist_ok=True)
        files.extend(
            sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / package).glob("*.proto"))
        )
    _protoc(files)
    # grpc_python_out writes a _pb2_grpc module for every file; keep those of services only.
    for name in files:
        if "\nservice " not in (PROTO_ROOT / name).read_text():
            stem = OUT / name.removesuffix(".proto")
            for suffix in ("_pb2_grpc.py", "_pb2_grpc.pyi"):
                Path(f"{stem}{suffix}").unlink(missing_ok=True)
    for package in PACKAGES:
        _write(OUT / package / "__init__.py", INIT_TEXT.format(package=package.replace("/", ".")))
    # Intermediate packages without generated code of their own (src/automations/executor).
    for package in sorted({str(Path(p).parent) for p in PACKAGES}):
        init = OUT / package / "__init__.py"
        if package != "automations" and not init.exists():
            _write(init, PARENT_INIT_TEXT.format(package=package.replace("/", ".")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
