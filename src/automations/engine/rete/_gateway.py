"""The one gateway to durable_rules' C module ``durable_rules_engine``, bound to one thread.

The only code of the project that calls durable_rules. It exposes just what the matcher needs:
create a ruleset, post facts (assert, drain every action, retract what fired) and read the facts
held. No sids, no timers, no ``delete_state``/``delete_ruleset`` (see ``docs/design/rete.md`` for
the crash paths avoided).

:class:`Gateway` calls the C module in this process. ``_process_gateway.ProcessGateway`` serves
the same calls from a worker process running a :class:`Gateway` (``_gateway_worker``), so that
its memory can be given back by replacing the process; :class:`DurableGateway` is what both offer.
"""

from __future__ import annotations

import json
import threading
from typing import Any, NamedTuple, Protocol

from automations.engine.rete import fact_ids

OBSERVED = 2
"""durable's result code for a post holding a fact id it had already seen."""


class Posted(NamedTuple):
    """What one post did.

    Attributes:
        code: durable's result of the assert (:data:`OBSERVED`: match the post in Python).
        fired: ``(rule number, fact position)`` of every action durable fired, in order.
        error: durable's error when the assert failed (then ``code`` is :data:`OBSERVED`).
    """

    code: int
    fired: list[tuple[int, int]]
    error: str | None


class GatewayLost(RuntimeError):
    """The gateway's worker process is gone (it crashed or was killed): its rulesets with it."""


class DurableGateway(Protocol):
    """The calls the matcher makes to durable_rules, from one thread."""

    calls: int

    @property
    def error(self) -> type[Exception]:
        """The exception type of durable's refusals (a create it refuses raises it)."""
        ...

    def check_thread(self) -> None:
        """Binds to the calling thread on first use; raises on any other thread afterwards."""
        ...

    def create_ruleset(self, name: str, definition: str) -> int:
        """Creates a ruleset and returns its handle."""
        ...

    def post(self, handle: int, facts: str, count: int, suffix: str) -> Posted:
        """Asserts ``count`` facts (a JSON array), drains every action, retracts what fired."""
        ...

    def get_facts(self, handle: int) -> list[Any]:
        """Returns the facts held (of the one sid); for tests and checks."""
        ...

    def close(self) -> None:
        """Gives back what the gateway holds (a worker process: stopped)."""
        ...


class ThreadBound:
    """Bound to the first thread that uses it (durable_rules' calls must all come from one)."""

    _owner: int | None = None

    def check_thread(self) -> None:
        """Binds to the calling thread on first use; raises on any other thread afterwards."""
        ident = threading.get_ident()
        if self._owner is None:
            self._owner = ident
        elif ident != self._owner:
            raise RuntimeError("durable_rules used from a second thread")


class Gateway(ThreadBound):
    """The one gateway to ``durable_rules_engine`` in this process, bound to one thread.

    Args:
        module: The C module (tests pass a recording proxy); the real one when omitted.
    """

    def __init__(self, module: Any = None) -> None:
        if module is None:
            import durable_rules_engine

            module = durable_rules_engine
        self._m = module
        self.calls = 0

    def _check(self) -> None:
        self.check_thread()
        self.calls += 1

    @property
    def error(self) -> type[Exception]:
        """The C module's exception type."""
        err: type[Exception] = self._m.error
        return err

    def create_ruleset(self, name: str, definition: str) -> int:
        """Creates a ruleset and returns its handle."""
        self._check()
        handle: int = self._m.create_ruleset(name, definition)
        return handle

    def post(self, handle: int, facts: str, count: int, suffix: str) -> Posted:
        """Asserts ``count`` facts, drains every action and retracts the facts that fired.

        Facts have :mod:`fact_ids` ids with ``suffix``. When durable reports a fact id as
        already observed (or fails the assert), every fact of the post is retracted and the
        caller matches the post in Python.
        """
        self._check()
        m = self._m
        error: str | None = None
        try:
            code = int(m.assert_facts(handle, facts)[0])
        except m.error as exc:
            code, error = OBSERVED, str(exc)
        fired = [fact_ids.decode(message) for message in self._drain(handle)]
        retract: set[int] | range = range(count) if code == OBSERVED else {j for _, j in fired}
        if retract:
            m.retract_facts(handle, json.dumps(fact_ids.retraction(retract, suffix)))
        return Posted(code, fired, error)

    def _drain(self, handle: int) -> list[str]:
        """Returns every pending action message, completing each (no callbacks run)."""
        out: list[str] = []
        start = self._m.start_action
        complete = self._m.complete_and_start_action
        while True:
            result = start(handle)
            if not result:
                return out
            state_handle = result[2]
            message: str | None = result[1]
            while message:
                out.append(message)
                message = complete(handle, state_handle)

    def get_facts(self, handle: int) -> list[Any]:
        """Returns the facts held (of the one sid); for tests and checks."""
        self._check()
        try:
            facts: list[Any] = json.loads(self._m.get_facts(handle, "0"))
        except self._m.error:  # the sid is created by the first post (error 309 before)
            return []
        return facts

    def close(self) -> None:
        """Nothing to give back: durable's rulesets live as long as this process."""
