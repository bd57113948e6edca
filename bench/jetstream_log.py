"""Times the cluster's JetStream log: encoding, publishing batches with every PubAck awaited, and
reading partitions with the ordered reader, on this machine's nats-server.

Not a test. Usage::

    .venv/bin/python -m bench.jetstream_log                  # nats://127.0.0.1:4222
    .venv/bin/python -m bench.jetstream_log --url nats://host:4222 --events 200000 --runs 3

Each run uses streams of its own (a fresh prefix), deleted afterwards. Events are Prefect-like
flow-run state changes (a resource with a name, three related resources, a small payload), sent
as client messages and stamped with a receive time (``log_encoding.encode_messages``).

- encode: building the batches' bytes and ids (ingest's share, per event).
- publish, one 500-event batch per call, in turn: each call waits for its PubAck (latency bound).
- publish, 16 batches of 500 per call (16 partitions), in turn: pipelined within a call.
- publish, ingest's shape: 1,000-event requests split over 32 partitions (~31 events a batch),
  8 requests in flight.
- read: one reader over a partition holding every batch, from sequence 1 (entries only, then
  also decoding every event to the domain model); and 16 readers at once, one per partition.

Each figure also says the CPU microseconds per event spent by this process and by the server
(found by its command line; 0 when it is not local): on a shared 2-core machine those vary far
less than the rates do.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from automations.cluster import log, log_encoding, log_streams
from automations.v1 import event_pb2

BATCH = 500


def make_events(n: int) -> list[event_pb2.Event]:
    events = []
    for i in range(n):
        message = event_pb2.Event(
            id=str(uuid.uuid4()),
            event="prefect.flow-run.Completed",
            follows=str(uuid.uuid4()) if i % 2 else "",
        )
        message.occurred.seconds = 1_760_000_000 + i // 1000
        run = f"prefect.flow-run.{uuid.UUID(int=i)}"
        message.resource.labels.update(
            {"prefect.resource.id": run, "prefect.resource.name": f"nightly-{i % 97}"}
        )
        for role, kind in (("flow", "flow"), ("deployment", "deployment"), ("work-queue", "wq")):
            message.related.add().labels.update(
                {
                    "prefect.resource.id": f"prefect.{kind}.{uuid.UUID(int=i % 50)}",
                    "prefect.resource.role": role,
                    "prefect.resource.name": f"{kind}-{i % 50}",
                }
            )
        message.payload.update({"intended": {"from": "RUNNING", "to": "COMPLETED"}})
        events.append(message)
    return events


def batches_of(
    events: list[event_pb2.Event], size: int, partitions: int, received: float
) -> list[log.Batch]:
    out = []
    for number, start in enumerate(range(0, len(events), size)):
        chunk = events[start : start + size]
        partition = number % partitions
        out.append(
            log.Batch(
                partition,
                log_encoding.encode_messages(chunk, received=received),
                log_encoding.batch_id(partition, [e.id for e in chunk]),
            )
        )
    return out


def server_pid(url: str) -> int | None:
    """The local nats-server serving ``url``'s port, found by its command line (or None)."""
    port = url.rsplit(":", 1)[-1].strip("/")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"nats-server") and port.encode() in argv:
            return int(proc.name)
    return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (0 when unknown)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timer:
    """Wall seconds, this process's CPU seconds and the server's, over one measurement."""

    def __init__(self, server: int | None) -> None:
        self.server = server

    async def __call__(self, what: Callable[[], Awaitable[object]]) -> tuple[float, float, float]:
        wall, cpu, server = time.perf_counter(), time.process_time(), cpu_seconds(self.server)
        await what()
        return (
            time.perf_counter() - wall,
            time.process_time() - cpu,
            cpu_seconds(self.server) - server,
        )


async def read_all(
    jetstream_log: log.JetStreamLog,
    stage: log_streams.Stage,
    partition: int,
    count: int,
    decode: bool,
) -> int:
    """Opens a reader from sequence 1 and takes ``count`` entries (decoding them, if asked)."""
    reader = await jetstream_log.open_reader(stage, partition, start=1)
    events = 0
    for _ in range(count):
        entry = await anext(reader)
        events += len(entry.events()) if decode else 1
    await reader.close()
    return events


def record(figures: dict[str, float], key: str, n: int, times: tuple[float, float, float]) -> None:
    wall, cpu, server = times
    figures[key] = n / wall
    figures[key + "_cpu"] = cpu / n * 1e6
    figures[key + "_server"] = server / n * 1e6


async def one_run(url: str, events: list[event_pb2.Event]) -> dict[str, float]:
    n = len(events)
    timed = Timer(server_pid(url))
    settings = log_streams.LogSettings(prefix=f"BENCH{uuid.uuid4().hex[:8]}")
    jetstream_log = await log.JetStreamLog.connect(url, settings, request_timeout=30.0)
    figures: dict[str, float] = {}
    try:
        await jetstream_log.ensure_streams()
        raw, fwd = log_streams.Stage.RAW, log_streams.Stage.FWD
        start = time.process_time()
        single = batches_of(events, BATCH, 1, received=time.time())
        figures["encode_us_per_event"] = (time.process_time() - start) / n * 1e6
        figures["bytes_per_event"] = sum(len(b.payload) for b in single) / n

        async def one_by_one() -> None:
            for batch in single:
                await jetstream_log.publish(raw, [batch])

        record(figures, "publish_1_per_call", n, await timed(one_by_one))

        spread = batches_of(events, BATCH, 16, received=time.time())

        async def sixteen_per_call() -> None:
            for start in range(0, len(spread), 16):
                await jetstream_log.publish(fwd, spread[start : start + 16])

        record(figures, "publish_16_per_call", n, await timed(sixteen_per_call))

        # ingest's shape, on streams of another prefix so that the reads below see only the
        # batches above
        ingest_settings = log_streams.LogSettings(prefix=settings.prefix + "I")
        ingest_log = await log.JetStreamLog.connect(url, ingest_settings, request_timeout=30.0)
        try:
            await ingest_log.ensure_streams()
            requests = [
                batches_of(events[s : s + 1000], 32, 32, received=time.time())
                for s in range(0, n, 1000)
            ]
            queue: asyncio.Queue[list[log.Batch]] = asyncio.Queue()
            for request in requests:
                queue.put_nowait(request)

            async def client() -> None:
                while not queue.empty():
                    await ingest_log.publish(raw, queue.get_nowait())

            async def eight_in_flight() -> None:
                await asyncio.gather(*(client() for _ in range(8)))

            record(figures, "publish_ingest_shape", n, await timed(eight_in_flight))
        finally:
            await ingest_log.delete_streams()
            await ingest_log.close()

        for decode in (False, True):
            key = "read_decoded" if decode else "read_entries"
            times = await timed(
                lambda d=decode: read_all(jetstream_log, raw, 0, len(single), d)  # type: ignore[misc]
            )
            record(figures, key, n, times)

        per_partition = [sum(1 for b in spread if b.partition == p) for p in range(16)]

        async def sixteen_readers() -> None:
            await asyncio.gather(
                *(read_all(jetstream_log, fwd, p, c, False) for p, c in enumerate(per_partition))
            )

        record(figures, "read_16_readers", n, await timed(sixteen_readers))
    finally:
        await jetstream_log.delete_streams()
        await jetstream_log.close()
    return figures


async def main_async(url: str, n: int, runs: int) -> None:
    events = make_events(n)
    results = [await one_run(url, events) for _ in range(runs)]

    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    def spread(key: str) -> str:
        values = [r[key] for r in results]
        return f"{min(values):,.0f}-{max(values):,.0f}"

    print(f"== JetStream log: {n:,} events, {BATCH} per batch unless said; median of {runs} runs")
    print(f"   load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"encode (ids, receive time, bytes):    {median('encode_us_per_event'):6.2f} us/event,"
        f" {median('bytes_per_event'):.0f} bytes/event"
    )
    rows = [
        ("publish, 1 batch per call, in turn", "publish_1_per_call", BATCH),
        ("publish, 16 batches per call", "publish_16_per_call", BATCH),
        ("publish, ingest shape (1000/request, 32 partitions)", "publish_ingest_shape", 31.25),
        ("read, 1 partition, entries", "read_entries", BATCH),
        ("read, 1 partition, decoded to domain events", "read_decoded", BATCH),
        ("read, 16 readers at once, entries", "read_16_readers", BATCH),
    ]
    for label, key, per_message in rows:
        rate = median(key)
        print(
            f"{label:58s} {rate:10,.0f} events/s ({spread(key)}) = {rate / per_message:6,.0f} msg/s;"
            f" CPU us/event: client {median(key + '_cpu'):.2f}, server {median(key + '_server'):.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jetstream_log")
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main_async(args.url, args.events, args.runs))


if __name__ == "__main__":
    main()
