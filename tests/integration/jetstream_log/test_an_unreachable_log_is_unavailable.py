"""Whatever keeps the log from storing a batch (no server, a server gone, no JetStream, no stream)
is ``LogUnavailable`` within the caller's time limit; a stream set up differently is refused."""

from __future__ import annotations

import time
from pathlib import Path

import nats
import pytest

from automations.cluster import log, log_errors, log_streams
from automations.domain import errors
from tests import nats_server
from tests.integration.jetstream_log import batches
from tests.integration.jetstream_log.conftest import NO_BINARY, fresh_settings, open_log


async def test_connecting_where_no_server_listens_fails_within_the_time_limit() -> None:
    url = f"nats://127.0.0.1:{nats_server.free_port()}"
    started = time.monotonic()
    with pytest.raises(log_errors.LogUnavailable, match="no NATS server answered") as caught:
        await log.JetStreamLog.connect(url, fresh_settings(), connect_timeout=1.0)
    assert time.monotonic() - started < 3.0
    assert isinstance(caught.value, errors.Unavailable)  # UNAVAILABLE over gRPC
    assert caught.value.reason == "LOG_UNAVAILABLE"


async def test_publishing_after_the_server_went_away_fails_within_the_time_limit(
    own_nats_server: nats_server.NatsServer,
) -> None:
    jetstream_log = await open_log(own_nats_server.url, fresh_settings())
    try:
        await jetstream_log.publish(log_streams.Stage.RAW, [batches.numbered(0, 0)])
        own_nats_server.stop()
        for n in (1, 2):  # the first while the client notices, the next while it reconnects
            started = time.monotonic()
            with pytest.raises(log_errors.LogUnavailable):
                await jetstream_log.publish(
                    log_streams.Stage.RAW, [batches.numbered(0, n)], timeout=1.0
                )
            assert time.monotonic() - started < 2.0
    finally:
        await jetstream_log.close()


async def test_a_server_without_jetstream_is_refused(tmp_path: Path) -> None:
    executable = nats_server.binary()
    if executable is None:
        pytest.skip(NO_BINARY)
    server = nats_server.NatsServer(executable, tmp_path, jetstream=False)
    server.start()
    try:
        with pytest.raises(log_errors.LogUnavailable, match="JetStream does not"):
            await log.JetStreamLog.connect(server.url, fresh_settings(), request_timeout=1.0)
    finally:
        server.stop()


async def test_publishing_to_a_missing_stream_is_unavailable(nats_url: str) -> None:
    jetstream_log = await log.JetStreamLog.connect(nats_url, fresh_settings())
    try:  # ensure_streams never ran
        with pytest.raises(log_errors.LogUnavailable, match="no stream answered"):
            await jetstream_log.publish(
                log_streams.Stage.RAW, [batches.numbered(0, 0)], timeout=2.0
            )
    finally:
        await jetstream_log.close()


async def test_setting_up_the_streams_twice_is_harmless_and_updates_retention(
    jetstream_log: log.JetStreamLog, nats_url: str
) -> None:
    await jetstream_log.publish(log_streams.Stage.RAW, [batches.numbered(0, 0)])
    settings = jetstream_log.settings
    again = await open_log(
        nats_url, log_streams.LogSettings(prefix=settings.prefix, max_age=3600.0)
    )
    await again.close()
    client = await nats.connect(nats_url)
    try:
        info = await client.jsm().stream_info(settings.stream(log_streams.Stage.RAW))
    finally:
        await client.close()
    assert info.config.max_age == 3600.0
    assert info.config.duplicate_window == 120.0
    assert info.state.messages == 1  # kept


async def test_a_stream_with_other_subjects_is_refused(nats_url: str) -> None:
    settings = fresh_settings()
    client = await nats.connect(nats_url)
    await client.jsm().add_stream(
        name=settings.stream(log_streams.Stage.RAW), subjects=[f"{settings.prefix}.elsewhere"]
    )
    await client.close()
    other = await log.JetStreamLog.connect(nats_url, settings)
    try:
        with pytest.raises(log_errors.LogStreamMismatch, match="exists with subjects"):
            await other.ensure_streams()
    finally:
        await other.delete_streams()
        await other.close()


def test_settings_name_their_mistakes() -> None:
    with pytest.raises(ValueError, match="prefix"):
        log_streams.LogSettings(prefix="a.b")
    with pytest.raises(ValueError, match="replicas"):
        log_streams.LogSettings(replicas=0)
    with pytest.raises(ValueError, match="duplicate_window"):
        log_streams.LogSettings(max_age=60.0)
    with pytest.raises(ValueError, match="partition"):
        log_streams.LogSettings().subject(log_streams.Stage.RAW, -1)
