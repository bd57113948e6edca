"""A reader outlives a restart of the NATS server (clean or kill -9): its consumer is recreated from
the next undelivered sequence, so it misses nothing and repeats nothing. Acknowledged batches
survive the restart; publishing is unavailable meanwhile and a retry with the same ids succeeds."""

from __future__ import annotations

import pytest

from automations.cluster import log_streams
from tests import nats_server
from tests.integration.jetstream_log import batches
from tests.integration.jetstream_log.conftest import fresh_settings, open_log


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "kill-9"])
async def test_a_reader_misses_nothing_across_a_restart(
    own_nats_server: nats_server.NatsServer, kill: bool
) -> None:
    jetstream_log = await open_log(own_nats_server.url, fresh_settings())
    try:
        before = await jetstream_log.publish(
            log_streams.Stage.RAW, [batches.numbered(p, n) for n in range(4) for p in (0, 1)]
        )
        sequences = [p.sequence for p in before if p.partition == 0]
        # one reader has read some of its partition; the other is caught up and has received
        # nothing (a consumer that never delivered must not restart from sequence 1)
        reading = await jetstream_log.open_reader(log_streams.Stage.RAW, 0, start=1, heartbeat=0.5)
        assert [e.sequence for e in await batches.take(reading, 2)] == sequences[:2]
        caught_up = before[-1].sequence + 1
        late = await jetstream_log.open_reader(
            log_streams.Stage.RAW, 1, start=caught_up, heartbeat=0.5
        )
        assert await late.next(timeout=0.3) is None

        own_nats_server.restart(kill=kill)

        after = await batches.publish_until_stored(
            jetstream_log,
            log_streams.Stage.RAW,
            [batches.numbered(p, n) for n in (4, 5) for p in (0, 1)],
        )
        assert not any(p.duplicate for p in after)

        rest = await batches.take(reading, 4, timeout=30)
        assert [e.sequence for e in rest] == sequences[2:] + [
            p.sequence for p in after if p.partition == 0
        ]
        assert [batches.ids_of(e) for e in rest] == [
            batches.ids_of_numbered(0, n) for n in (2, 3, 4, 5)
        ]
        assert await reading.next(timeout=0.5) is None
        assert reading.recreated >= 1

        wanted = [p.sequence for p in after if p.partition == 1]
        assert [e.sequence for e in await batches.take(late, 2, timeout=30)] == wanted
        assert await late.next(timeout=0.5) is None
    finally:
        await jetstream_log.close()
