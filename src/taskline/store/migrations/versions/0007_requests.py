"""requests: an agent asks a person (a question, an approval); tasks carry needs_input

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-14 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("needs_input", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_tasks_needs_input"), ["needs_input"], unique=False)
    op.create_table(
        "requests",
        sa.Column("id", sa.String(length=80), nullable=False),
        sa.Column("task_id", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("response_schema", _JSON, nullable=True),
        sa.Column("choices", _JSON, nullable=True),
        sa.Column("action", _JSON, nullable=True),
        sa.Column("tool_call_id", sa.String(length=200), nullable=True),
        sa.Column("run_id", sa.String(length=80), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=120), nullable=True),
        sa.Column("answer", _JSON, nullable=True),
        sa.Column("arguments", _JSON, nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_requests_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    op.create_index("ix_requests_task_id_status", "requests", ["task_id", "status"], unique=False)
    op.create_index(
        "ix_requests_status_created_at", "requests", ["status", "created_at"], unique=False
    )
    op.create_index(
        "ix_requests_status_expires_at", "requests", ["status", "expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_requests_status_expires_at", table_name="requests")
    op.drop_index("ix_requests_status_created_at", table_name="requests")
    op.drop_index("ix_requests_task_id_status", table_name="requests")
    op.drop_table("requests")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_needs_input"))
        batch_op.drop_column("needs_input")
