"""Persistence: SQLAlchemy Core tables, Alembic migrations and synchronous repositories.

Every repository function takes an open ``sqlalchemy.engine.Connection`` and never commits, so the
engine's single writer thread can put many client batches into one transaction (group commit).
Modules:

- ``database``: :class:`~automations.store.database.Database` (writer and reader engines, SQLite
  pragmas, ``migrate()``, ``ping()``).
- ``tables``: the schema.
- ``event_log``: append with dedup, filtered listing with keyset pagination, retention purge.
- ``automations_repo``, ``state_repo``, ``firings_repo``, ``outbox_repo``: one per table.
- ``pagination`` (opaque keyset tokens, glob filters) and ``sql`` (dialect helpers): shared parts.

This package never imports the engine, gRPC or the generated protobuf code.
"""
