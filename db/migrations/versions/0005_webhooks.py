"""webhooks: notification endpoints with a cursor on the audit log and a lease, and their delivery log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_SQL = "status IN ('PENDING', 'RETRYING')"


def upgrade() -> None:
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('format', sa.String(length=16), nullable=False),
        sa.Column('kinds', sa.JSON(), nullable=True),
        sa.Column('min_priority', sa.String(length=16), nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('failing', sa.Boolean(), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('cursor_seq', sa.BigInteger(), nullable=False),
        sa.Column('last_delivered_seq', sa.BigInteger(), nullable=True),
        sa.Column('lease_owner', sa.String(length=200), nullable=True),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('endpoint_id', sa.Uuid(), nullable=False),
        sa.Column('event_seq', sa.BigInteger(), nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('first_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        # Also the index of an endpoint's log, newest event first (db.services.webhook_log).
        sa.UniqueConstraint('endpoint_id', 'event_seq', name='uq_webhook_deliveries_endpoint_seq'),
    )
    op.create_index(
        'ix_webhook_deliveries_open', 'webhook_deliveries', ['endpoint_id', 'event_seq'],
        postgresql_where=sa.text(OPEN_SQL), sqlite_where=sa.text(OPEN_SQL),
    )


def downgrade() -> None:
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_endpoints')
