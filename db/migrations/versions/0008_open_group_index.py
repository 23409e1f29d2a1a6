"""patch groups: a partial index of the open members by group, in queue order

Without it the groups page reads every open patch twice (the heads and their count) from the table: 700 ms at
100,000 pending (tests/benchmarks, pending_groups_page); with it both are index-only scans.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_GROUP_MEMBERS = "status IN ('PENDING', 'ESCALATED') AND group_key IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        'ix_patches_open_group', 'patches', ['group_key', 'priority_rank', 'created_at', 'id'], unique=False,
        postgresql_where=sa.text(OPEN_GROUP_MEMBERS), sqlite_where=sa.text(OPEN_GROUP_MEMBERS),
    )


def downgrade() -> None:
    op.drop_index('ix_patches_open_group', table_name='patches')
