"""The gateway's worker process: serves a :class:`_gateway.Gateway` over its stdin and stdout.

Run as ``python -m automations.engine.rete._gateway_worker`` by ``_process_gateway``. Requests and
answers are frames (the wire format is in :mod:`_process_gateway`); the worker exits when its
stdin closes (the engine stopped or died). It ignores SIGINT and SIGTERM: a Ctrl-C or a stop sent
to the whole process group must not take the rete away from an engine finishing its last batch.
"""

from __future__ import annotations

import os
import signal
import struct
import traceback
from array import array

from automations.engine.rete import _gateway

HEADER = struct.Struct("<IBI")
"""A request: payload length, operation, handle."""
ANSWER = struct.Struct("<IB")
"""An answer: body length, status."""
POST_HEAD = struct.Struct("<iI")
"""A post's answer body starts with durable's code and the number of actions fired."""

CREATE, POST, FACTS = b"C"[0], b"P"[0], b"F"[0]
OK, DURABLE_ERROR, FAILED = 0, 1, 2


def read_exact(fd: int, n: int) -> bytes | None:
    """Reads exactly ``n`` bytes from ``fd``; None at end of file."""
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    """Writes all of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve(gateway: _gateway.Gateway, fd_in: int, fd_out: int) -> None:
    """Answers requests from ``fd_in`` on ``fd_out`` until ``fd_in`` closes."""
    while True:
        header = read_exact(fd_in, HEADER.size)
        if header is None:
            return
        length, op, handle = HEADER.unpack(header)
        payload = read_exact(fd_in, length) if length else b""
        if payload is None:
            return
        try:
            status, body = OK, _answer(gateway, op, handle, payload)
        except gateway.error as exc:
            status, body = DURABLE_ERROR, str(exc).encode()
        except Exception:  # noqa: BLE001 - reported to the engine, which raises it there
            status, body = FAILED, traceback.format_exc().encode()
        write_all(fd_out, ANSWER.pack(len(body), status) + body)


def _answer(gateway: _gateway.Gateway, op: int, handle: int, payload: bytes) -> bytes:
    if op == POST:
        count, suffix, facts = payload.decode().split("\0", 2)
        posted = gateway.post(handle, facts, int(count), suffix)
        pairs = array("i", [n for pair in posted.fired for n in pair])
        error = (posted.error or "").encode()
        return POST_HEAD.pack(posted.code, len(posted.fired)) + pairs.tobytes() + error
    if op == CREATE:
        name, definition = payload.decode().split("\0", 1)
        return struct.pack("<q", gateway.create_ruleset(name, definition))
    if op == FACTS:
        import json

        return json.dumps(gateway.get_facts(handle)).encode()
    raise ValueError(f"unknown operation {op!r}")


def main() -> None:
    """Serves the real C module on stdin/stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    answers = os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the answers
    serve(_gateway.Gateway(), 0, answers)


if __name__ == "__main__":
    main()
