"""One real engine per module serving webhooks, and helpers to reach it over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import automations
from tests.integration.engine_process import EngineProcess


@pytest.fixture(scope="module")
def hooks_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """A real ``automations serve`` with its webhooks on a free port (shared by a module)."""
    proc = EngineProcess(tmp_path_factory.mktemp("webhooks"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def api(hooks_engine: EngineProcess) -> Iterator[automations.Client]:
    with automations.Client(hooks_engine.grpc_addr) as client:
        yield client


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def events_named(api: automations.Client, name: str) -> list[dict[str, Any]]:
    """The committed events with that name (read back through the gRPC API)."""
    return list(api.list_events(names=[name]))


def github_signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` as GitHub documents it: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def stripe_signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` as Stripe documents it: ``t=<ts>,v1=<hex HMAC-SHA256("<ts>.<body>")>``."""
    ts = int(time.time()) if timestamp is None else timestamp
    signed = f"{ts}.".encode() + body
    return f"t={ts},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def engine_log(engine: EngineProcess) -> str:
    return Path(engine.log_path).read_text(errors="replace")
