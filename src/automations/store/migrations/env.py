"""Alembic environment for the automations store.

Programmatic use (``Database.migrate``) passes an open connection in
``config.attributes["connection"]``; the caller owns the transaction. From the command line the URL
comes from ``-x url=...``, ``AUTOMATIONS_DATABASE_URL`` or ``sqlalchemy.url`` in alembic.ini.
"""

from __future__ import annotations

import logging.config
import os

from alembic import context
from sqlalchemy.engine import Connection

from automations.store import tables
from automations.store.database import Database, normalize_url

config = context.config
target_metadata = tables.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "AUTOMATIONS_DATABASE_URL"
    )
    return url or config.get_main_option("sqlalchemy.url") or "sqlite:///automations.db"


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transactional_ddl=True,  # SQLite and PostgreSQL both roll DDL back: all or nothing
    )


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    if config.config_file_name is not None:  # the alembic CLI: log as alembic.ini says
        logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)
    database = Database(_url())
    try:
        with database.writer.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
            if conn.in_transaction():
                conn.commit()
    finally:
        database.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
