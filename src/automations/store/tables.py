"""The schema: SQLAlchemy Core tables, the single source the Alembic migrations are checked against.

Conventions:

- Times are ``Double`` seconds since the Unix epoch (UTC), as in the domain model: cheap to write,
  trivially ordered, converted to ISO 8601 only at the edges.
- Hot JSON columns (``events.data``, ``engine_state.data``, firings' and the outbox's JSON) are
  ``LargeBinary`` holding orjson-encoded UTF-8 JSON (BLOB on SQLite, BYTEA on PostgreSQL): no
  str round trip, no server-side JSON parsing on the write path. ``automations.definition`` is
  ``Text`` (Prefect's JSON, rarely written, nice to read in a SQL shell).
- Identifiers are ``Text`` (``Key``: ``COLLATE "C"`` on PostgreSQL): clients choose event ids,
  and no length limit of ours should turn one long id into a failed group commit
  (``event_log.append`` rejects keys too long for an index).
- No foreign keys between the engine's tables: a group commit must never fail because one
  record of the batch refers to an automation deleted a moment earlier. ``automations_repo.delete``
  removes dependent engine state explicitly.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint and index names, so migrations can refer to them on every backend."""

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

Key = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
"""Identifier text: bytewise ``COLLATE "C"`` on PostgreSQL (as SQLite's BINARY): cheaper index
comparisons than a linguistic collation, index-usable ``LIKE 'prefix%'``, and the same order of
ids (hence of pages) on both backends."""

automations = sa.Table(
    "automations",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created", sa.Double, nullable=False),
    sa.Column("updated", sa.Double, nullable=False),
    sa.Column(
        "definition",
        sa.Text,
        nullable=False,
        comment="prefect_json.dump_automation(with_ids=False)",
    ),
    sa.Index(None, "created", "id"),
    sa.Index(None, "enabled"),
)
"""Automations: the Prefect JSON definition plus the columns we filter and order on."""

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("event", Key, nullable=False),
    sa.Column("occurred", sa.Double, nullable=False),
    sa.Column("received", sa.Double, nullable=False),
    sa.Column("resource_id", Key, nullable=False),
    sa.Column("follows", Key, nullable=True),
    sa.Column(
        "data",
        sa.LargeBinary,
        nullable=False,
        comment='orjson {"resource": {...}, "related": [...], "payload": {...}}',
    ),
    # Indexes cost the ingest path one B-tree insertion each per event, so there are only two
    # besides the primary key (measured, SQLite, 8,000-event transactions, 200k W1 events:
    # id PK + (occurred, id) + (resource_id, occurred) + (event, occurred) ~56k rows/s;
    # id PK + (occurred) + (resource_id, occurred) ~102k rows/s):
    # - (occurred), not (occurred, id): when many events share one ``occurred`` (batch
    #   producers, the benchmark) an (occurred, id) entry lands at a random place like the
    #   primary key's, whereas (occurred) entries (SQLite appends the rowid) are appended.
    #   Listing still orders by (occurred, id): the database sorts only the ties of one
    #   ``occurred`` value, which are few in practice.
    # - no (event, occurred): a name filter walks the (occurred) range and checks each name
    #   (names are few and frequent; a filter on a rare name over a long range is slower).
    sa.Index(None, "occurred"),
    sa.Index(None, "resource_id", "occurred"),
)
"""The event log; its primary key is also the persistent dedup set of event ids."""

engine_state = sa.Table(
    "engine_state",
    metadata,
    sa.Column("automation_id", Key, nullable=False),
    sa.Column("trigger_id", Key, nullable=False),
    sa.Column("kind", Key, nullable=False),
    sa.Column("key", Key, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("due", sa.Double, nullable=True),
    sa.PrimaryKeyConstraint("automation_id", "trigger_id", "kind", "key"),
    sa.Index(None, "due"),
)
"""Opaque per-key engine state (buckets, composite progress, parked events...) of the engine."""

firings = sa.Table(
    "firings",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("automation_id", Key, nullable=False),
    sa.Column("trigger_id", Key, nullable=False),
    sa.Column("fired", sa.Double, nullable=False),
    sa.Column("triggering_event_id", Key, nullable=True),
    sa.Column("labels", sa.LargeBinary, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index(None, "automation_id", "fired"),
    sa.Index(None, "fired"),
)
"""Firing history (audit); kept when an automation is deleted."""

action_invocations = sa.Table(
    "action_invocations",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("automation_id", Key, nullable=False),
    sa.Column("firing_id", Key, nullable=False),
    sa.Column("action_index", sa.Integer, nullable=False),
    sa.Column("action_type", sa.Text, nullable=False),
    sa.Column("idempotency_key", Key, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.Double, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created", sa.Double, nullable=False),
    sa.Column("updated", sa.Double, nullable=False),
    sa.Column("request", sa.LargeBinary, nullable=False),
    sa.Column("result", sa.LargeBinary, nullable=True),
    sa.Column(
        "partition",
        sa.Integer,
        nullable=True,
        comment="cluster mode: the partition whose owner dispatches it",
    ),
    sa.UniqueConstraint("idempotency_key"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "automation_id", "created"),
    sa.Index(None, "created", "id"),
    sa.Index(None, "partition", "status", "next_attempt_at"),
)
"""The outbox: one row per action of a firing, dispatched, retried and dead-lettered from here."""

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("slug", Key, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("template", sa.Text, nullable=False),
    sa.Column("strict", sa.Boolean, nullable=False),
    sa.Column("rate_limit", sa.Double, nullable=False),
    sa.Column(
        "auth",
        sa.Text,
        nullable=False,
        comment="JSON: bearer token hash, signature scheme, signing secret, header, tolerance",
    ),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created", sa.Double, nullable=False),
    sa.Column("updated", sa.Double, nullable=False),
    sa.UniqueConstraint("slug"),
    sa.Index(None, "created", "id"),
)
"""Incoming webhooks (``domain.webhooks``); the slug is the secret part of their URL."""

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("webhook_id", Key, nullable=False),
    sa.Column("received", sa.Double, nullable=False),
    sa.Column(
        "data",
        sa.LargeBinary,
        nullable=False,
        comment="orjson: method, status, duration, error, rendered, headers (masked), event ids",
    ),
    sa.Index(None, "webhook_id", "received"),
)
"""The last deliveries of each webhook (``webhook_deliveries_kept`` per webhook)."""

# --- cluster mode (PostgreSQL only; the tables exist, empty, in single-node databases too) -------

cluster = sa.Table(
    "cluster",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False, comment="always 1"),
    sa.Column("partition_count", sa.Integer, nullable=False),
    sa.Column("created", sa.Double, nullable=False),
    sa.Column(
        "automations_version",
        sa.BigInteger,
        nullable=False,
        server_default="0",
        comment="incremented by every automation change in cluster mode",
    ),
)
"""The cluster's one row: its partition count, fixed when the first replica created it, and a
counter of automation changes (replicas load the changes before a commit when it moved); webhook
changes increment it too (replicas reload their webhooks when it moved, ``cluster_webhooks``)."""

cluster_members = sa.Table(
    "cluster_members",
    metadata,
    sa.Column("id", Key, primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("grpc_addr", sa.Text, nullable=False),
    sa.Column(
        "lock_key",
        sa.BigInteger,
        nullable=False,
        comment="the session advisory lock the replica holds while it lives",
    ),
    sa.Column("started", sa.Double, nullable=False),
    sa.Column("heartbeat", sa.Double, nullable=False),
    sa.UniqueConstraint("lock_key"),
)
"""The replicas that joined; one whose advisory lock is free is dead (``cluster.membership``)."""

partitions = sa.Table(
    "partitions",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", Key, nullable=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("lease_until", sa.Double, nullable=False),
    sa.Column("raw_seq", sa.BigInteger, nullable=False),
    sa.Column("fwd_seq", sa.BigInteger, nullable=False),
    sa.Column("relayed_seq", sa.BigInteger, nullable=False),
    sa.Column("clock", sa.LargeBinary, nullable=True, comment="orjson: the event clock"),
    sa.Column(
        "watermarks",
        sa.LargeBinary,
        nullable=True,
        comment='orjson {"<source partition>": last forwarded sequence applied}',
    ),
)
"""Partition leases with an epoch, and the input offsets committed with the partition's state."""

partition_history = sa.Table(
    "partition_history",
    metadata,
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("owner", Key, nullable=False),
    sa.Column("previous_owner", Key, nullable=True),
    sa.Column("acquired", sa.Double, nullable=False),
    sa.PrimaryKeyConstraint("partition", "epoch"),
    sa.Index(None, "acquired"),
)
"""Every acquisition of a partition (who, from whom, when): failovers and their timing."""

partition_state = sa.Table(
    "partition_state",
    metadata,
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("automation_id", Key, nullable=False),
    sa.Column("trigger_id", Key, nullable=False),
    sa.Column("kind", Key, nullable=False),
    sa.Column("key", Key, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("due", sa.Double, nullable=True),
    sa.PrimaryKeyConstraint("partition", "automation_id", "trigger_id", "kind", "key"),
    sa.Index(None, "due"),
)
"""Cluster mode's ``engine_state``: each partition's engine records, moved with the partition."""

cluster_outbox = sa.Table(
    "cluster_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column(
        "partition",
        sa.Integer,
        nullable=False,
        comment="whose owner relays the row (a forward's source partition)",
    ),
    sa.Column("stage", sa.String(8), nullable=False, comment="raw or fwd"),
    sa.Column("destination", sa.Integer, nullable=False),
    sa.Column("msg_id", Key, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False, comment="cluster.log_encoding"),
    sa.Column("created", sa.Double, nullable=False),
    sa.Index(None, "partition", "id"),
)
"""Log messages a commit made (forwards, automation-made events), published after it commits."""

cluster_lineage = sa.Table(
    "cluster_lineage",
    metadata,
    sa.Column("event_id", Key, primary_key=True),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("origin", Key, nullable=False),
    sa.Column("created", sa.Double, nullable=False),
    sa.Index(None, "created"),
)
"""The loop guard's causal tree of automation-made events, for the replica that evaluates them."""
