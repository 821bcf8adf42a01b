"""Seed the invoice and credit-note number series.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

series = sa.table("number_sequences", sa.column("name", sa.String), sa.column("last_value", sa.BigInteger))


def upgrade() -> None:
    op.bulk_insert(series, [{"name": "invoice", "last_value": 0}, {"name": "credit_note", "last_value": 0}])


def downgrade() -> None:
    op.execute(series.delete().where(series.c.name.in_(["invoice", "credit_note"])))
