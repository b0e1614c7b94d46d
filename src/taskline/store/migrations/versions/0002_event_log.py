"""event log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:41:45.398491
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("task_id", sa.String(length=80), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("data", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("client_id", sa.String(length=80), nullable=True),
        sa.Column("run_id", sa.String(length=80), nullable=True),
        sa.Column("parent_run_id", sa.String(length=80), nullable=True),
        sa.Column("agent_id", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_task_id_seq", ["task_id", "seq"], unique=True)
        batch_op.create_index(batch_op.f("ix_events_timestamp"), ["timestamp"], unique=False)

    op.create_table(
        "log_meta",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_log_meta")),
    )
    op.create_table(
        "task_logs",
        sa.Column("task_id", sa.String(length=80), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_task_logs")),
    )
    # A stable random id of this database's log: cursors from another database are void.
    op.bulk_insert(
        sa.table("log_meta", sa.column("key", sa.String), sa.column("value", sa.String)),
        [{"key": "epoch", "value": uuid.uuid4().hex}],
    )
    # Tasks that exist already get an empty log.
    op.execute(
        "INSERT INTO task_logs (task_id, last_seq, first_seq, state, state_version) "
        "SELECT id, 0, 1, NULL, 0 FROM tasks"
    )


def downgrade() -> None:
    op.drop_table("task_logs")
    op.drop_table("log_meta")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_timestamp"))
        batch_op.drop_index("ix_events_task_id_seq")

    op.drop_table("events")
