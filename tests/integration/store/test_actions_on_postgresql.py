"""Actions with the engine on PostgreSQL: the outbox, retries and lifecycle events, kill -9 included."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from tests.integration.engine_client import Client, states, wait_for
from tests.integration.engine_process import EngineProcess
from tests.integration.executors.executor_process import ExecutorProcess, Receiver, Reply

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


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
        client = Client(engine)
        n = 60
        try:
            automation_id = client.create(
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
            ids = client.publish("pg.job.done", "job.1", n)
            wait_for(lambda: receiver.count() >= 5, what="the first webhooks")
            engine.kill9()
            client.close()
            engine.start()
            client = Client(engine)
            wait_for(
                lambda: states(client.invocations(automation_id))["STATE_SUCCEEDED"] == 2 * n,
                timeout=90,
                what=f"{2 * n} succeeded invocations",
            )
            keys = collections.Counter(r.headers["idempotency-key"] for r in receiver.requests)
            assert len(keys) == n and max(keys.values()) == 1
            assert sorted(r.body.decode() for r in receiver.requests) == sorted(ids)
            executed = [
                e
                for e in client.events_named("prefect.automation.action.executed")
                if e["resource"]["prefect.resource.id"] == f"prefect.automation.{automation_id}"
            ]
            assert len(executed) == 2 * n
        finally:
            client.close()
            engine.stop()
            executor.stop()
