"""patch groups: the grouping key on every patch, and the audit append of many entries in one call

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""
from collections.abc import Sequence

import hashlib

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Same text as db.models.patch_group_key: sha256 of "cve\npackage\ntarget", first 32 hex digits.
PG_BACKFILL = (
    "UPDATE patches SET group_key = left(encode(sha256(convert_to("
    "coalesce(cve_id, '') || E'\\n' || package_name || E'\\n' || target_version, 'UTF8')), 'hex'), 32)"
)

# hitl_audit_append (0003) for many entries of one transaction: one lock, one head read, one notification.
# Arrays of equal length, one element per entry, hashed exactly as the single append hashes them.
PG_APPEND_MANY = """
CREATE FUNCTION hitl_audit_append_many(
    lock_key bigint, genesis_hash text, channel text,
    p_decision_ids uuid[], p_actions text[], p_actors text[], p_details text[], p_ip_addresses text[], p_user_agents text[],
    before_ats text[], before_seqs text[], after_seqs text[]
) RETURNS TABLE (new_seq bigint) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    entry_at timestamptz;
    entry_hash text;
    i integer;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT a.seq, a.hash INTO head_seq, head_hash FROM audit_log AS a ORDER BY a.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := genesis_hash;
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_decision_ids, 1), 0) LOOP
        head_seq := head_seq + 1;
        entry_at := clock_timestamp();
        entry_hash := encode(sha256(convert_to(
            head_hash || before_ats[i] || to_char(entry_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00'
            || before_seqs[i] || head_seq::text || after_seqs[i],
            'UTF8')), 'hex');
        INSERT INTO audit_log (seq, decision_id, action, actor, at, details, ip_address, user_agent, prev_hash, hash)
        VALUES (head_seq, p_decision_ids[i], p_actions[i], p_actors[i], entry_at, p_details[i]::json, p_ip_addresses[i],
                p_user_agents[i], head_hash, entry_hash);
        head_hash := entry_hash;
        new_seq := head_seq;
        RETURN NEXT;
    END LOOP;
    -- The hub reads every new row from the table: one wake-up per call is enough (db.broker).
    IF head_seq IS NOT NULL AND array_length(p_decision_ids, 1) > 0 THEN
        PERFORM pg_notify(channel, '{"action":"BATCH","seq":' || head_seq::text || '}');
    END IF;
END;
$$
"""


def _group_key(cve_id: str | None, package_name: str, target_version: str) -> str:
    return hashlib.sha256(f"{cve_id or ''}\n{package_name}\n{target_version}".encode()).hexdigest()[:32]


def upgrade() -> None:
    op.add_column('patches', sa.Column('group_key', sa.String(length=32), nullable=True))
    op.create_index('ix_patches_group', 'patches', ['group_key', 'priority_rank', 'created_at', 'id'], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(PG_BACKFILL)
        op.execute(PG_APPEND_MANY)
        return
    rows = bind.execute(sa.text("SELECT id, cve_id, package_name, target_version FROM patches")).all()
    updates = [{"key": _group_key(row.cve_id, row.package_name, row.target_version), "id": row.id} for row in rows]
    if updates:
        bind.execute(sa.text("UPDATE patches SET group_key = :key WHERE id = :id"), updates)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS hitl_audit_append_many(bigint, text, text, uuid[], text[], text[], text[], text[], text[], "
            "text[], text[], text[])"
        )
    op.drop_index('ix_patches_group', table_name='patches')
    op.drop_column('patches', 'group_key')
