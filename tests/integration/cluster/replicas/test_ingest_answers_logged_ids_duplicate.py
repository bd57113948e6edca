"""Cluster ingest answers DUPLICATE for an id logged by an earlier request, and only for that.

A small request's look-up of logged ids runs while it is published, so it may find the row of this
very publish (its owner was quick): a row with the request's own receive time is that, and the
event is answered ACCEPTED. A large request is looked up first. Real PostgreSQL and NATS; the owner's commit is the event log append it runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from automations.cluster import cluster_ingest, log, log_streams
from automations.store import event_log
from automations.store.database import Database
from tests import factories

pytestmark = pytest.mark.postgres


async def _publish_after_logging(database_url: str, nats_url: str) -> tuple[list[bool], int]:
    database = Database(database_url)
    database.migrate()
    settings = log_streams.LogSettings(f"T{uuid.uuid4().hex[:12]}")
    opened = await log.JetStreamLog.connect(nats_url, settings)
    try:
        await opened.ensure_streams()
        now = time.time()
        earlier = factories.event("logged-before", received=now - 5.0)
        quick = factories.event("logged-by-this-publish", received=now)
        fresh = factories.event("new", received=now)
        with database.write() as conn:  # what the partitions' owners committed
            event_log.append(conn, [earlier, quick])
        resent = factories.event("logged-before", received=now)
        ingest = cluster_ingest.ClusterIngest(opened, database, partitions=1)
        flags = await ingest.publish([resent, quick, fresh, fresh])
        large = [resent] + [
            factories.event(f"large-{n}", received=now)
            for n in range(cluster_ingest.OVERLAPPED_LOOKUP_EVENTS)
        ]
        flags += await ingest.publish(large)  # looked up first: the logged id is not published
        stored = await opened.last_sequence(log_streams.Stage.RAW, 0)
        await opened.delete_streams()
        return flags, stored
    finally:
        await opened.close()
        database.dispose()


def test_only_an_id_logged_by_an_earlier_request_or_repeated_is_answered_duplicate(
    database_url: str, nats_url: str
) -> None:
    flags, stored = asyncio.run(_publish_after_logging(database_url, nats_url))

    small, large = flags[:4], flags[4:]
    assert small == [False, True, True, False]
    assert large == [False] + [True] * cluster_ingest.OVERLAPPED_LOOKUP_EVENTS
    assert stored == 2  # one message per request for the partition
