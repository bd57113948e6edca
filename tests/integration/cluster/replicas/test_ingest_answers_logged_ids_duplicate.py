"""Cluster ingest answers DUPLICATE for an id logged by an earlier request, and only for that.

The look-up of logged ids runs while the batch is published, so it may find the row of this very
publish (its owner was quick): a row with the request's own receive time is that, and the event
is answered ACCEPTED. Real PostgreSQL and NATS; the owner's commit is the event log append it runs.
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

    assert flags == [False, True, True, False]
    assert stored == 1  # one message for the partition: its owner skips the logged ids
