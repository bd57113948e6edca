"""The two streams of a cluster's log: their names, settings, creation and checking.

A cluster has two streams, named from a prefix (default ``AUTOMATIONS``):

* RAW (``<prefix>_RAW``, subjects ``<prefix>.raw.<p>``): events as ingested, one subject per raw
  partition (the partition of the event's resource);
* FWD (``<prefix>_FWD``, subjects ``<prefix>.fwd.<p>``): work an owner forwards to the partition
  where a trigger's state lives, tagged with its source partition and sequence.

Both are file-stored and limits-retained (``max_age``, 24 h by default; owners also purge each
subject up to their committed offset), with a 120 s duplicate window and direct gets allowed (for
``last_sequence``); one replica on a single server, three in production. Only nats-server 2.9
features are used.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import re

import nats.errors
import nats.js.api
import nats.js.errors
import nats.js.manager

from automations.cluster import log_errors

_log = logging.getLogger(__name__)

_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Stage(enum.StrEnum):
    """The two streams: events as ingested, and work forwarded between partitions."""

    RAW = "raw"
    FWD = "fwd"


@dataclasses.dataclass(frozen=True, slots=True)
class LogSettings:
    """How the streams are named and kept.

    Attributes:
        prefix: Names the streams (``<prefix>_RAW``) and their subjects (``<prefix>.raw.<p>``);
            letters, digits, ``_`` and ``-``. A test uses a fresh one.
        replicas: Stream replicas: 1 on one server, 3 in production (an odd number of servers).
        max_age: Seconds a message is kept at most (owners purge committed messages sooner).
        duplicate_window: Seconds within which a repeated ``Nats-Msg-Id`` is dropped.
    """

    prefix: str = "AUTOMATIONS"
    replicas: int = 1
    max_age: float = 24 * 3600.0
    duplicate_window: float = 120.0

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ValueError(
                f"prefix {self.prefix!r}: 1 to 64 letters, digits, '_' or '-' (it names streams and subjects)"
            )
        if not 1 <= self.replicas <= 5:
            raise ValueError(f"replicas must be 1 to 5 (JetStream's limit), not {self.replicas}")
        if not (math.isfinite(self.max_age) and self.max_age > 0):
            raise ValueError(f"max_age must be a positive number of seconds, not {self.max_age}")
        if not 0 < self.duplicate_window <= self.max_age:
            raise ValueError(
                f"duplicate_window must be positive and at most max_age, not {self.duplicate_window}"
            )

    def stream(self, stage: Stage) -> str:
        """The name of a stage's stream, e.g. ``AUTOMATIONS_RAW``."""
        return f"{self.prefix}_{stage.value.upper()}"

    def subject(self, stage: Stage, partition: int) -> str:
        """The subject of one partition of a stage, e.g. ``AUTOMATIONS.raw.7``."""
        if partition < 0:
            raise ValueError(f"partition must be >= 0, not {partition}")
        return f"{self.prefix}.{stage.value}.{partition}"


def stream_config(settings: LogSettings, stage: Stage) -> nats.js.api.StreamConfig:
    """The configuration a stage's stream must have."""
    return nats.js.api.StreamConfig(
        name=settings.stream(stage),
        subjects=[f"{settings.prefix}.{stage.value}.*"],
        retention=nats.js.api.RetentionPolicy.LIMITS,
        discard=nats.js.api.DiscardPolicy.OLD,
        storage=nats.js.api.StorageType.FILE,
        num_replicas=settings.replicas,
        max_age=settings.max_age,
        duplicate_window=settings.duplicate_window,
        allow_direct=True,
    )


async def ensure(jsm: nats.js.manager.JetStreamManager, settings: LogSettings) -> None:
    """Creates both streams, or checks existing ones (idempotent; safe to race with others).

    Retention settings (``max_age``, ``duplicate_window``, direct gets) of an existing stream are
    updated to ``settings``.

    Raises:
        LogStreamMismatch: A stream exists with other subjects, storage, replicas or retention,
            or its subjects belong to another stream.
        LogUnavailable: JetStream cannot be reached.
    """
    for stage in Stage:
        await _ensure(jsm, settings, stage)


async def _ensure(
    jsm: nats.js.manager.JetStreamManager, settings: LogSettings, stage: Stage
) -> None:
    wanted = stream_config(settings, stage)
    name = settings.stream(stage)
    doing = f"setting up stream {name}"
    try:
        try:
            info = await jsm.stream_info(name)
        except nats.js.errors.NotFoundError:
            try:
                await jsm.add_stream(wanted)
                _log.info("created stream %s", name)
                return
            except nats.js.errors.BadRequestError as exc:
                # created meanwhile by another replica, or the subjects are taken
                try:
                    info = await jsm.stream_info(name)
                except nats.js.errors.NotFoundError:
                    raise log_errors.LogStreamMismatch(
                        f"{doing}: JetStream refused it: {exc.description}"
                    ) from exc
        config = info.config
        for field, have, want in (
            ("subjects", config.subjects, wanted.subjects),
            ("storage", config.storage, wanted.storage),
            ("replicas", config.num_replicas, wanted.num_replicas),
            ("retention", config.retention, wanted.retention),
        ):
            if have != want:
                raise log_errors.LogStreamMismatch(
                    f"stream {name} exists with {field} {have!r}, this cluster needs {want!r}"
                )
        if (
            not math.isclose(config.max_age or 0.0, wanted.max_age or 0.0)
            or not math.isclose(config.duplicate_window, wanted.duplicate_window)
            or not config.allow_direct
        ):
            await jsm.update_stream(
                dataclasses.replace(
                    config,
                    max_age=wanted.max_age,
                    duplicate_window=wanted.duplicate_window,
                    allow_direct=True,
                )
            )
            _log.info("updated stream %s's retention settings", name)
    except (log_errors.LogStreamMismatch, log_errors.LogUnavailable):
        raise
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise log_errors.from_client_error(exc, doing) from exc


async def delete(jsm: nats.js.manager.JetStreamManager, settings: LogSettings) -> None:
    """Deletes both streams and everything in them (tests, and tearing a cluster down)."""
    for stage in Stage:
        try:
            await jsm.delete_stream(settings.stream(stage))
        except nats.js.errors.NotFoundError:
            pass
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise log_errors.from_client_error(exc, "deleting the streams") from exc
