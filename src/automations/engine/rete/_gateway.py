"""The one gateway to durable_rules' C module ``durable_rules_engine``, bound to one thread.

The only code of the project that calls durable_rules. It exposes just what the matcher needs
(create a ruleset, assert, drain and retract facts, read the facts held): no sids, no timers, no
``delete_state``/``delete_ruleset`` (see ``docs/design/rete.md`` for the crash paths avoided).
"""

from __future__ import annotations

import json
import threading
from typing import Any


class Gateway:
    """The one gateway to ``durable_rules_engine``, bound to one thread.

    Args:
        module: The C module (tests pass a recording proxy); the real one when omitted.
    """

    def __init__(self, module: Any = None) -> None:
        if module is None:
            import durable_rules_engine

            module = durable_rules_engine
        self._m = module
        self._owner: int | None = None
        self.calls = 0

    def check_thread(self) -> None:
        """Binds to the calling thread on first use; raises on any other thread afterwards."""
        ident = threading.get_ident()
        if self._owner is None:
            self._owner = ident
        elif ident != self._owner:
            raise RuntimeError("durable_rules used from a second thread")

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

    def assert_facts(self, handle: int, facts: str) -> int:
        """Asserts a JSON array of facts; returns durable's result code (1: some unmatched)."""
        self._check()
        result = self._m.assert_facts(handle, facts)
        return int(result[0])

    def retract_facts(self, handle: int, facts: str) -> None:
        """Retracts a JSON array of ``{"id": ...}`` facts."""
        self._check()
        self._m.retract_facts(handle, facts)

    def drain(self, handle: int) -> list[str]:
        """Returns every pending action message, completing each (no callbacks run)."""
        self._check()
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
