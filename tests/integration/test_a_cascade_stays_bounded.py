"""One event cannot set off an unbounded cascade of automations firing on each other's events."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import automations
from tests.integration.engine_process import EngineProcess
from tests.waiting import wait_until

CATCH_ALL = {
    "trigger": {"type": "event", "posture": "Reactive", "expect": ["*"], "threshold": 1},
    "actions": [{"type": "do-nothing"}],
}


def test_two_automations_watching_everything_stop_at_the_cascade_budget(tmp_path: Path) -> None:
    engine = EngineProcess(tmp_path, env={"AUTOMATIONS_MAX_CASCADE_FIRINGS": "200"}).start()
    try:
        with automations.Client(engine.grpc_addr) as client:
            ids = [client.create_automation({"name": n, **CATCH_ALL})["id"] for n in "ab"]
            # b's creation is an event a sees: its tree ran already, its figures are the baseline
            before = {a: len(client.list_firings(a)) for a in ids}
            failed_before = len(client.list_invocations(statuses=["failed"]))
            client.publish(
                [
                    {
                        "id": str(uuid.uuid4()),
                        "event": "go",
                        "resource": {"prefect.resource.id": "r"},
                    }
                ],
                raise_on_rejected=True,
            )

            def counts() -> tuple[int, int]:
                return (
                    sum(len(client.list_firings(a)) - before[a] for a in ids),
                    len(client.list_invocations(statuses=["failed"])) - failed_before,
                )

            settled = wait_until(
                lambda: (lambda now: now if now[1] and now == counts() else None)(counts()),
                timeout=60,
                what="the cascade to be cut and settle",
            )
        fired, cut = settled
        # a and b fire on the client's event (not counted); 200 firings on automation-made
        # events are planned; the rest of the last rounds are cut (no actions, no events)
        assert fired == 2 + 200 + cut
        assert cut < 3 * 200
        assert engine.proc is not None
        started = time.monotonic()
        engine.proc.send_signal(signal.SIGTERM)
        assert engine.proc.wait(30) == 0
        assert time.monotonic() - started < 15
    finally:
        engine.stop()
