"""tasks carry a lease: the agent holding the task, its fencing token, until when

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_agent_id", sa.String(length=80), nullable=True))
        batch_op.add_column(
            sa.Column("lease_token", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("lease_seconds", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("lease_assigned", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("lease_lost_by", sa.String(length=80), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_tasks_lease_expires_at"), ["lease_expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_lease_expires_at"))
        batch_op.drop_column("lease_lost_by")
        batch_op.drop_column("lease_assigned")
        batch_op.drop_column("lease_seconds")
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_token")
        batch_op.drop_column("lease_agent_id")
