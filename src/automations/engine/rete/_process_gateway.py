r"""durable_rules in a worker process: the gateway whose memory can be given back.

durable's rulesets are immutable and cannot be deleted safely, so a matcher under automation churn
abandons them (``docs/design/rete.md``). In this process that memory would stay until exit; in a
worker it goes with the worker. :class:`ProcessGateway` runs ``_gateway_worker`` (a
``_gateway.Gateway`` over pipes) and forwards each call as one frame and one answer: a post is one
round trip (about 10-20 µs on loopback pipes, next to the milliseconds durable spends on a chunk),
and durable's work runs on the worker's core, outside this process's GIL.

Wire format (little-endian): a request is ``<u32 payload length><u8 op><u32 handle>`` then the
payload; an answer is ``<u32 body length><u8 status>`` then the body. Ops: ``C`` create (payload
``name\0definition``, body ``<i64 handle>``), ``P`` post (payload ``count\0suffix\0facts``, body
``<i32 code><u32 n>`` then ``n`` pairs of ``<i32 rule><i32 position>`` then durable's error
text), ``F`` facts held (body: JSON). Status 0 ok, 1 durable's error (body: its message), 2 any
other failure (body: the worker's traceback).

If the worker dies, every call raises :class:`_gateway.GatewayLost`; the matcher then starts a
new gateway and recreates its live rulesets there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any

from automations.engine.rete import _gateway, _gateway_worker

_SOURCE_ROOT = str(Path(__file__).resolve().parents[3])
"""The directory holding the ``automations`` package (the worker imports it from there)."""


class DurableError(Exception):
    """durable_rules refused a call in the worker (its message is durable's)."""


class ProcessGateway(_gateway.ThreadBound):
    """The :class:`_gateway.DurableGateway` of a worker process, bound to one thread.

    Args:
        python: The interpreter to run the worker with (default: this one).
    """

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self._in = self._out = -1
        self._lost = False
        self.calls = 0

    def _start(self) -> subprocess.Popen[bytes]:
        """Starts the worker (on the first call: a matcher never used starts none)."""
        # the engine's own settings (its API token among them) are not the worker's business
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOMATIONS_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_SOURCE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        proc = subprocess.Popen(  # noqa: S603 - our own module, this interpreter
            [self._python, "-m", "automations.engine.rete._gateway_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        self._in = proc.stdin.fileno()
        self._out = proc.stdout.fileno()
        self._proc = proc
        return proc

    @property
    def pid(self) -> int:
        """The worker's process id (0 before the first call)."""
        return self._proc.pid if self._proc is not None else 0

    @property
    def error(self) -> type[Exception]:
        """The exception a call durable refuses raises."""
        return DurableError

    def _call(self, op: int, handle: int, payload: bytes) -> bytes:
        self.check_thread()
        self.calls += 1
        if self._lost:
            raise _gateway.GatewayLost("the durable_rules worker is gone")
        proc = self._proc if self._proc is not None else self._start()
        head: bytes | None = None
        body: bytes | None = None
        cause: Exception | None = None
        try:
            _gateway_worker.write_all(
                self._in, _gateway_worker.HEADER.pack(len(payload), op, handle) + payload
            )
            head = _gateway_worker.read_exact(self._out, _gateway_worker.ANSWER.size)
            if head is not None:
                length, status = _gateway_worker.ANSWER.unpack(head)
                body = _gateway_worker.read_exact(self._out, length) if length else b""
        except OSError as exc:  # a broken pipe: the worker died
            head, cause = None, exc
        if head is None or body is None:
            self._lost = True
            raise _gateway.GatewayLost(
                f"the durable_rules worker (pid {proc.pid}) is gone (exit {proc.poll()})"
            ) from cause
        if status == _gateway_worker.DURABLE_ERROR:
            raise DurableError(body.decode())
        if status != _gateway_worker.OK:
            raise RuntimeError(f"the durable_rules worker failed:\n{body.decode()}")
        return body

    def create_ruleset(self, name: str, definition: str) -> int:
        """Creates a ruleset in the worker and returns its handle."""
        body = self._call(_gateway_worker.CREATE, 0, f"{name}\0{definition}".encode())
        handle: int = int.from_bytes(body, "little", signed=True)
        return handle

    def post(self, handle: int, facts: str, count: int, suffix: str) -> _gateway.Posted:
        """One post in the worker (see :meth:`_gateway.Gateway.post`)."""
        body = self._call(_gateway_worker.POST, handle, f"{count}\0{suffix}\0{facts}".encode())
        code, n = _gateway_worker.POST_HEAD.unpack_from(body)
        end = _gateway_worker.POST_HEAD.size + 8 * n
        pairs = array("i")
        pairs.frombytes(body[_gateway_worker.POST_HEAD.size : end])
        fired = list(zip(pairs[0::2], pairs[1::2], strict=True))
        return _gateway.Posted(code, fired, body[end:].decode() or None)

    def get_facts(self, handle: int) -> list[Any]:
        """The facts the worker's ruleset holds (for tests and checks)."""
        facts: list[Any] = json.loads(self._call(_gateway_worker.FACTS, handle, b""))
        return facts

    def close(self) -> None:
        """Stops the worker (its stdin closed; killed if it has not exited within 5 s)."""
        self._lost = True
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
