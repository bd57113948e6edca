"""Initial schema: automations, events, engine_state, firings, action_invocations.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 12:38:36.233832
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")  # identifiers: bytewise order


def upgrade() -> None:
    op.create_table(
        "action_invocations",
        sa.Column("id", KEY, nullable=False),
        sa.Column(
            "automation_id",
            KEY,
            nullable=False,
        ),
        sa.Column(
            "firing_id",
            KEY,
            nullable=False,
        ),
        sa.Column("action_index", sa.Integer(), nullable=False),
        sa.Column("action_type", sa.Text(), nullable=False),
        sa.Column(
            "idempotency_key",
            KEY,
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Double(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
        sa.Column("request", sa.LargeBinary(), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_invocations")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_action_invocations_idempotency_key")),
    )
    with op.batch_alter_table("action_invocations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_action_invocations_automation_id_created"),
            ["automation_id", "created"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_action_invocations_created_id"), ["created", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_action_invocations_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )

    op.create_table(
        "automations",
        sa.Column("id", KEY, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("updated", sa.Double(), nullable=False),
        sa.Column(
            "definition",
            sa.Text(),
            nullable=False,
            comment="prefect_json.dump_automation(with_ids=False)",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automations")),
    )
    with op.batch_alter_table("automations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_automations_created_id"), ["created", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_automations_enabled"), ["enabled"], unique=False)

    op.create_table(
        "engine_state",
        sa.Column(
            "automation_id",
            KEY,
            nullable=False,
        ),
        sa.Column(
            "trigger_id",
            KEY,
            nullable=False,
        ),
        sa.Column("kind", KEY, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("due", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint(
            "automation_id", "trigger_id", "kind", "key", name=op.f("pk_engine_state")
        ),
    )
    with op.batch_alter_table("engine_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_engine_state_due"), ["due"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", KEY, nullable=False),
        sa.Column("event", KEY, nullable=False),
        sa.Column("occurred", sa.Double(), nullable=False),
        sa.Column("received", sa.Double(), nullable=False),
        sa.Column(
            "resource_id",
            KEY,
            nullable=False,
        ),
        sa.Column("follows", KEY, nullable=True),
        sa.Column(
            "data",
            sa.LargeBinary(),
            nullable=False,
            comment='orjson {"resource": {...}, "related": [...], "payload": {...}}',
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        # two indexes only: each costs the ingest path a B-tree insertion per event (tables.py)
        batch_op.create_index(batch_op.f("ix_events_occurred"), ["occurred"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_events_resource_id_occurred"), ["resource_id", "occurred"], unique=False
        )

    op.create_table(
        "firings",
        sa.Column("id", KEY, nullable=False),
        sa.Column(
            "automation_id",
            KEY,
            nullable=False,
        ),
        sa.Column(
            "trigger_id",
            KEY,
            nullable=False,
        ),
        sa.Column("fired", sa.Double(), nullable=False),
        sa.Column(
            "triggering_event_id",
            KEY,
            nullable=True,
        ),
        sa.Column("labels", sa.LargeBinary(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_firings")),
    )
    with op.batch_alter_table("firings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_firings_automation_id_fired"), ["automation_id", "fired"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_firings_fired"), ["fired"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("firings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_firings_fired"))
        batch_op.drop_index(batch_op.f("ix_firings_automation_id_fired"))

    op.drop_table("firings")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_resource_id_occurred"))
        batch_op.drop_index(batch_op.f("ix_events_occurred"))

    op.drop_table("events")
    with op.batch_alter_table("engine_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_engine_state_due"))

    op.drop_table("engine_state")
    with op.batch_alter_table("automations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_automations_enabled"))
        batch_op.drop_index(batch_op.f("ix_automations_created_id"))

    op.drop_table("automations")
    with op.batch_alter_table("action_invocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_invocations_status_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_action_invocations_created_id"))
        batch_op.drop_index(batch_op.f("ix_action_invocations_automation_id_created"))

    op.drop_table("action_invocations")
