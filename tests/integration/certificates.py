"""Real X.509 certificates for the transport-security tests, made with the ``openssl`` command.

A test CA signs a server certificate for ``127.0.0.1`` and ``localhost`` (subject alternative
names) and a client certificate; a second, unrelated CA signs a client certificate the engine must
refuse. Keys are P-256 EC keys (fast to generate), valid for a day.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Certificates:
    """PEM files of one test PKI."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_client_cert: Path
    rogue_client_key: Path

    def read(self, name: str) -> bytes:
        """Returns the bytes of the file ``name`` (a field name, e.g. ``client_key``)."""
        path: Path = getattr(self, name)
        return path.read_bytes()


def _openssl(*args: str | Path) -> None:
    done = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))}:\n{done.stderr}")


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", *_EC, "-keyout", key, "-out", cert, "-days", "1",
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, csr = (directory / f"{name}{ext}" for ext in (".pem", ".key", ".csr"))
    ext_file = directory / f"{name}.ext"
    ext_file.write_text(extensions)
    _openssl("req", "-new", *_EC, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "1", "-extfile", ext_file,
    )  # fmt: skip
    return cert, key


def make_certificates(directory: Path) -> Certificates:
    """Generates the test PKI in ``directory``; skips the test when ``openssl`` is missing."""
    if shutil.which("openssl") is None:
        reason = "the openssl command is not installed"
        print(reason)
        pytest.skip(reason)
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "test-ca")
    server = _leaf(
        directory,
        "server",
        ca,
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth\n",
    )
    client_ext = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    client = _leaf(directory, "client", ca, client_ext)
    rogue = _ca(directory, "rogue-ca")
    rogue_client = _leaf(directory, "rogue-client", rogue, client_ext)
    return Certificates(
        ca=ca[0],
        server_cert=server[0],
        server_key=server[1],
        client_cert=client[0],
        client_key=client[1],
        rogue_ca=rogue[0],
        rogue_client_cert=rogue_client[0],
        rogue_client_key=rogue_client[1],
    )
