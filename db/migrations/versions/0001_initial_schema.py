"""initial schema: patches, approvals, comments, hash-chained audit log, models, service state

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""
from collections.abc import Sequence
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


AUDIT_GUARD_FUNCTION = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
PG_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
)


def _audit_guards() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(AUDIT_GUARD_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('decision_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('ip_address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=512), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_decision_seq', ['decision_id', 'seq'], unique=False)

    op.create_table('ml_models',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('trained_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('training_samples', sa.Integer(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('feature_names', sa.JSON(), nullable=False),
    sa.Column('artifact', sa.LargeBinary(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version')
    )
    with op.batch_alter_table('ml_models', schema=None) as batch_op:
        batch_op.create_index('uq_ml_models_active', ['active'], unique=True, postgresql_where=sa.text('active'), sqlite_where=sa.text('active'))

    op.create_table('patches',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patch_id', sa.String(length=200), nullable=False),
    sa.Column('apv_id', sa.String(length=200), nullable=False),
    sa.Column('cve_id', sa.String(length=64), nullable=True),
    sa.Column('package_name', sa.String(length=214), nullable=False),
    sa.Column('current_version', sa.String(length=100), nullable=False),
    sa.Column('target_version', sa.String(length=100), nullable=False),
    sa.Column('version_bump', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('cvss_score', sa.Float(), nullable=True),
    sa.Column('cvss_vector', sa.String(length=512), nullable=True),
    sa.Column('cwe_ids', sa.JSON(), nullable=False),
    sa.Column('affected_systems', sa.JSON(), nullable=False),
    sa.Column('patch_size_lines', sa.Integer(), nullable=False),
    sa.Column('diff', sa.Text(), nullable=True),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('priority_rank', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ml_prediction', sa.JSON(), nullable=True),
    sa.Column('wargaming', sa.JSON(), nullable=True),
    sa.Column('ml_wargaming_agreement', sa.Boolean(), nullable=True),
    sa.Column('auto_approval_eligible', sa.Boolean(), nullable=False),
    sa.Column('requires_escalation', sa.Boolean(), nullable=False),
    sa.Column('submitted_by', sa.String(length=200), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deployment_outcome', sa.Boolean(), nullable=True),
    sa.Column('outcome_details', sa.Text(), nullable=True),
    sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sla_deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sla_at_risk_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sla_breached_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('required_approvals', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('patch_id')
    )
    with op.batch_alter_table('patches', schema=None) as batch_op:
        batch_op.create_index('ix_patches_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_patches_pending_queue', ['priority_rank', 'created_at', 'id'], unique=False, postgresql_where=sa.text("status IN ('PENDING', 'ESCALATED')"), sqlite_where=sa.text("status IN ('PENDING', 'ESCALATED')"))
        batch_op.create_index('ix_patches_sla_watch', ['sla_deadline'], unique=False, postgresql_where=sa.text("status IN ('PENDING', 'ESCALATED') AND sla_breached_at IS NULL"), sqlite_where=sa.text("status IN ('PENDING', 'ESCALATED') AND sla_breached_at IS NULL"))
        batch_op.create_index('ix_patches_status', ['status'], unique=False)

    op.create_table('service_state',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('approvals',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patch_id', sa.Uuid(), nullable=False),
    sa.Column('approver', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['patch_id'], ['patches.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('patch_id', 'approver', name='uq_approvals_patch_approver')
    )
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approvals_patch_id'), ['patch_id'], unique=False)

    op.create_table('comments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patch_id', sa.Uuid(), nullable=False),
    sa.Column('parent_id', sa.Uuid(), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['comments.id'], ),
    sa.ForeignKeyConstraint(['patch_id'], ['patches.id'], ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comments_patch_id'), ['patch_id'], unique=False)

    _audit_guards()
    # The kill-switch row exists from the start so that pausing can lock it (no insert race between replicas).
    state = sa.table("service_state", sa.column("key"), sa.column("value", sa.JSON()), sa.column("updated_at", sa.DateTime(timezone=True)))
    op.bulk_insert(state, [{"key": "auto_approval", "value": {"paused": False, "reason": None}, "updated_at": datetime.now(timezone.utc)}])


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comments_patch_id'))

    op.drop_table('comments')
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approvals_patch_id'))

    op.drop_table('approvals')
    op.drop_table('service_state')
    with op.batch_alter_table('patches', schema=None) as batch_op:
        batch_op.drop_index('ix_patches_status')
        batch_op.drop_index('ix_patches_sla_watch', postgresql_where=sa.text("status IN ('PENDING', 'ESCALATED') AND sla_breached_at IS NULL"), sqlite_where=sa.text("status IN ('PENDING', 'ESCALATED') AND sla_breached_at IS NULL"))
        batch_op.drop_index('ix_patches_pending_queue', postgresql_where=sa.text("status IN ('PENDING', 'ESCALATED')"), sqlite_where=sa.text("status IN ('PENDING', 'ESCALATED')"))
        batch_op.drop_index('ix_patches_created')

    op.drop_table('patches')
    with op.batch_alter_table('ml_models', schema=None) as batch_op:
        batch_op.drop_index('uq_ml_models_active', postgresql_where=sa.text('active'), sqlite_where=sa.text('active'))

    op.drop_table('ml_models')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_decision_seq')

    op.drop_table('audit_log')
