"""Actions with the engine on PostgreSQL: the outbox, retries and lifecycle events, kill -9 included."""

from __future__ import annotations

import collections
import uuid
from pathlib import Path

import pytest

import automations
from tests import waiting
from tests.integration.engine_process import EngineProcess
from tests.integration.executors.executor_process import ExecutorProcess, Receiver, Reply

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WAIT = 60.0
"""The bound of a wait: far beyond what any step needs on an idle machine."""


def succeeded(client: automations.Client, automation_id: str) -> int:
    return sum(i["status"] == "succeeded" for i in client.list_invocations(automation_id))


def test_webhooks_are_delivered_exactly_once_across_kill_9_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    url = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with Receiver() as receiver:
        receiver.reply = Reply(delay=0.05)
        executor = ExecutorProcess("webhook", tmp_path).start()
        engine = EngineProcess(
            tmp_path,
            database_url=url,
            extra_args=("--executor", f"call-webhook={executor.addr}"),
        ).start()
        client = automations.Client(engine.grpc_addr)
        n = 60
        try:
            created = client.create_automation(
                {
                    "name": "pg hook",
                    "trigger": {
                        "type": "event",
                        "expect": ["pg.job.done"],
                        "threshold": 1,
                        "within": 0,
                    },
                    "actions": [
                        {"type": "call-webhook", "url": receiver.url, "payload": "{{ event.id }}"},
                        {"type": "do-nothing"},
                    ],
                }
            )
            automation_id = created["id"]
            ids = [str(uuid.uuid4()) for _ in range(n)]
            client.publish(
                [
                    {"id": i, "event": "pg.job.done", "resource": {"prefect.resource.id": "job.1"}}
                    for i in ids
                ],
                raise_on_rejected=True,
            )
            waiting.wait_until(
                lambda: receiver.count() >= 5, timeout=WAIT, interval=0.1, what="the first webhooks"
            )
            engine.kill9()
            client.close()
            engine.start()
            client = automations.Client(engine.grpc_addr)
            waiting.wait_until(
                lambda: succeeded(client, automation_id) == 2 * n,
                timeout=2 * WAIT,
                interval=0.1,
                what=f"{2 * n} succeeded invocations",
            )
            keys = collections.Counter(r.headers["idempotency-key"] for r in receiver.requests)
            assert len(keys) == n and max(keys.values()) == 1
            assert sorted(r.body.decode() for r in receiver.requests) == sorted(ids)
            executed = [
                e
                for e in client.list_events(names=["prefect.automation.action.executed"])
                if e["resource"]["prefect.resource.id"] == f"prefect.automation.{automation_id}"
            ]
            assert len(executed) == 2 * n
        finally:
            client.close()
            engine.stop()
            executor.stop()
