"""Incoming webhooks in cluster mode: any replica serves ``/hooks/<slug>``, with the log's guarantees.

A webhook created through one replica answers a signed GitHub delivery on another at once (204,
the event drives an automation to a firing); GitHub's retry of the same delivery on a third is a
duplicate (one event); a bad request's ``prefect-cloud.webhook.failed`` and every replica's
delivery history reach the database; a webhook disabled through one replica stops answering on
the others; and the events of every 204 of a replica killed right after them are evaluated.
"""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from automations.store import tables
from tests.integration.cluster.replicas import harness
from tests.integration.engine_process import EngineProcess
from tests.integration.webhooks.conftest import github_signature
from tests.waiting import wait_until

pytestmark = pytest.mark.postgres

TEMPLATE = """{"event": "github.{{ headers['x-github-event'] }}",
 "resource": {"prefect.resource.id": "github.repo.{{ body.repository.full_name }}.{{ body.n }}"}}"""

ON_PUSH = {
    "name": "on push",
    "trigger": {
        "type": "event",
        "posture": "Reactive",
        "expect": ["github.push"],
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": 0,
    },
    "actions": [{"type": "do-nothing"}],
}


def _push(
    http: httpx.Client, replica: EngineProcess, slug: str, secret: str, n: int, delivery: str
) -> int:
    body = json.dumps({"ref": "refs/heads/main", "n": n, "repository": {"full_name": "acme/etl"}})
    headers = {
        "content-type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": github_signature(secret, body.encode()),
    }
    url = f"http://{replica.http_addr}/hooks/{slug}"
    return http.post(url, content=body, headers=headers).status_code


def _events(cluster: harness.Cluster, name: str) -> list[dict[str, Any]]:
    e = tables.events
    with cluster._engine.connect() as conn:
        rows = conn.execute(sa.select(e.c.id, e.c.resource_id).where(e.c.event == name)).all()
    return [{"id": r[0], "resource_id": r[1]} for r in rows]


def _fired(cluster: harness.Cluster) -> list[str | None]:
    return sorted(str(f[1]) for f in cluster.firings() if f[0] == "on-push")


def _hook(cluster: harness.Cluster, replica: EngineProcess, secret: str) -> dict[str, Any]:
    with cluster.client(replica) as api:
        api.create_automation(ON_PUSH, automation_id="on-push")
        return api.create_webhook(
            "github", TEMPLATE, signature_scheme="github", signing_secret=secret
        )


def test_a_webhook_created_on_one_replica_serves_on_every_replica_and_retries_dedupe(
    cluster: harness.Cluster,
) -> None:
    cluster.webhooks = True
    a, b, c = cluster.start_replica(), cluster.start_replica(), cluster.start_replica()
    secret = uuid.uuid4().hex
    hook = _hook(cluster, a, secret)
    delivery = str(uuid.uuid4())
    with httpx.Client(timeout=30) as http:
        # at once on another replica: it has not seen the webhook yet (its next poll is later)
        assert _push(http, b, hook["slug"], secret, 1, delivery) == 204
        assert _push(http, c, hook["slug"], secret, 1, delivery) == 204  # GitHub's retry
        unsigned = http.post(f"http://{c.http_addr}/hooks/{hook['slug']}", content=b"{")
        assert unsigned.status_code == 401
        failed = http.post(
            f"http://{c.http_addr}/hooks/{hook['slug']}",
            content=b'{"repository": {}}',
            headers={"X-GitHub-Event": "push"},
        )
        assert failed.status_code == 401  # unsigned
        cluster.wait_quiescent()
        pushed = _events(cluster, "github.push")
        assert [e["resource_id"] for e in pushed] == ["github.repo.acme/etl.1"]
        assert _fired(cluster) == [pushed[0]["id"]]

        with cluster.client(c) as api:
            wait_until(
                lambda: len(api.list_webhook_deliveries(hook["id"])) == 4,
                timeout=10,
                what="the deliveries of both replicas in the history",
            )
            statuses = sorted(d["status"] for d in api.list_webhook_deliveries(hook["id"]))
        assert statuses == [204, 204, 401, 401]

        huge = json.dumps({"n": 3, "blob": "x" * 1_100_000, "repository": {"full_name": "a/b"}})
        refused = http.post(
            f"http://{b.http_addr}/hooks/{hook['slug']}",
            content=huge,
            headers={
                "content-type": "application/json",
                "X-GitHub-Event": "push",
                "X-Hub-Signature-256": github_signature(secret, huge.encode()),
            },
        )
        assert refused.status_code == 400  # not a 503 a provider would retry forever
        assert "too large for the cluster's log" in refused.json()["error"]

        with cluster.client(a) as api:  # a template that fails to render on replica B: 400
            api.update_webhook(hook["id"], template='{"event": "x", "resource": {{ body }}}')
        body = json.dumps({"n": 2}).encode()
        signed = {"X-Hub-Signature-256": github_signature(secret, body), "X-GitHub-Event": "push"}
        wait_until(
            lambda: (
                http.post(
                    f"http://{b.http_addr}/hooks/{hook['slug']}", content=body, headers=signed
                ).status_code
                == 400
            ),
            timeout=10,
            what="the update served on another replica",
        )
        wait_until(
            lambda: _events(cluster, "prefect-cloud.webhook.failed") != [],
            timeout=20,
            what="prefect-cloud.webhook.failed in the event log",
        )
        # the update's audit event goes through replica A's outbox, its relay and the owner of its
        # partition: it may be logged after the failure B published directly
        wait_until(
            lambda: _events(cluster, "prefect-cloud.webhook.updated") != [],
            timeout=20,
            what="prefect-cloud.webhook.updated in the event log",
        )
        cluster.wait_quiescent()
        assert len(_events(cluster, "prefect-cloud.webhook.updated")) == 1

        with cluster.client(b) as api:
            api.disable_webhook(hook["id"])
        for replica in (a, c):
            wait_until(
                lambda r=replica: (
                    http.post(f"http://{r.http_addr}/hooks/{hook['slug']}").status_code == 404
                ),
                timeout=10,
                what="the disabled webhook gone from every replica",
            )


def test_every_204_of_a_replica_killed_right_after_is_evaluated(cluster: harness.Cluster) -> None:
    cluster.webhooks = True
    a, b = cluster.start_replica(), cluster.start_replica()
    secret = uuid.uuid4().hex
    hook = _hook(cluster, a, secret)
    with httpx.Client(timeout=30) as http:
        answered = [_push(http, b, hook["slug"], secret, n, str(uuid.uuid4())) for n in range(30)]
    b.kill9()
    assert answered == [204] * 30
    cluster.wait_quiescent(timeout=60)
    pushed = _events(cluster, "github.push")
    assert sorted(e["resource_id"] for e in pushed) == sorted(
        f"github.repo.acme/etl.{n}" for n in range(30)
    )
    assert _fired(cluster) == sorted(e["id"] for e in pushed)


def test_a_replica_whose_http_addr_is_in_use_exits_1_naming_it(cluster: harness.Cluster) -> None:
    cluster.webhooks = True
    replica = cluster.add_replica()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        replica.http_addr = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(RuntimeError, match="engine exited with 1") as failed:
            replica.start(timeout=60)
    assert f"cannot serve webhooks on http_addr {replica.http_addr}" in str(failed.value)
