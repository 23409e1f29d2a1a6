"""the audit append as one server-side call on PostgreSQL (lock, chain head, hash, insert, notify)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The chain lock is held from here to commit. Doing the head read, the insert and the notification in one
# call keeps client round trips out of that window (every append of every replica waits on it).
# The caller hashes nothing itself: it sends the canonical JSON of the entry in three pieces around the two
# values only known under the lock, `at` and `seq` (db.services.audit.hash_pieces). Each statement of a
# VOLATILE plpgsql function takes a new snapshot, so the head read sees every append committed before the
# lock was granted.
PG_FUNCTION = """
CREATE FUNCTION hitl_audit_append(
    lock_key bigint, genesis_hash text, channel text,
    p_decision_id uuid, p_action text, p_actor text, p_details text, p_ip_address text, p_user_agent text,
    before_at text, before_seq text, after_seq text
) RETURNS TABLE (new_seq bigint, new_at timestamptz, new_hash text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head_seq bigint;
    head_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT a.seq, a.hash INTO head_seq, head_hash FROM audit_log AS a ORDER BY a.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head_seq := 0;
        head_hash := genesis_hash;
    END IF;
    new_seq := head_seq + 1;
    new_at := clock_timestamp();
    new_hash := encode(sha256(convert_to(
        head_hash || before_at || to_char(new_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00'
        || before_seq || new_seq::text || after_seq,
        'UTF8')), 'hex');
    INSERT INTO audit_log (seq, decision_id, action, actor, at, details, ip_address, user_agent, prev_hash, hash)
    VALUES (new_seq, p_decision_id, p_action, p_actor, new_at, p_details::json, p_ip_address, p_user_agent, head_hash, new_hash);
    -- Delivered at commit, never for a rolled-back change; same text as canonical_json of these three keys.
    PERFORM pg_notify(channel, '{"action":' || to_json(p_action)::text || ',"decisionId":"' || p_decision_id::text
                               || '","seq":' || new_seq::text || '}');
    RETURN NEXT;
END;
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hitl_audit_append(bigint, text, text, uuid, text, text, text, text, text, text, text, text)")
