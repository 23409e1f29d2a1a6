"""auto-approval guard: outcomes of auto-approved patches per model, and each model's training feature profile

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'auto_approval_outcomes',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('patch_id', sa.Uuid(), nullable=False),
        sa.Column('model_version', sa.String(length=64), nullable=False),
        sa.Column('success', sa.Boolean(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['patch_id'], ['patches.id'], ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('patch_id'),
    )
    op.create_index('ix_auto_approval_outcomes_model', 'auto_approval_outcomes', ['model_version', 'id'], unique=False)
    with op.batch_alter_table('ml_models') as batch:
        batch.add_column(sa.Column('feature_profile', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ml_models') as batch:
        batch.drop_column('feature_profile')
    op.drop_index('ix_auto_approval_outcomes_model', table_name='auto_approval_outcomes')
    op.drop_table('auto_approval_outcomes')
