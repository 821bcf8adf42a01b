"""mapping versions, link association

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 19:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mappings") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("associated_to", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.drop_column("associated_to")
    with op.batch_alter_table("mappings") as batch:
        batch.drop_column("version")
