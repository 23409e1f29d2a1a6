"""patch counts per status kept by triggers (the queue's totalCount without counting every open patch)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL: statement-level triggers with transition tables, so a bulk INSERT/COPY or UPDATE adds one
# row per status it changed, not one per patch; an UPDATE that changes no status adds nothing.
PG_FUNCTION = """
CREATE FUNCTION patch_status_deltas_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO patch_status_deltas (status, delta) SELECT status, count(*) FROM added GROUP BY status;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO patch_status_deltas (status, delta) SELECT status, -count(*) FROM removed GROUP BY status;
    ELSE
        INSERT INTO patch_status_deltas (status, delta)
        SELECT status, sum(delta) FROM (
            SELECT status, -1 AS delta FROM removed UNION ALL SELECT status, 1 FROM added
        ) AS changes GROUP BY status HAVING sum(delta) <> 0;
    END IF;
    RETURN NULL;
END;
$$
"""
PG_TRIGGERS = (
    "CREATE TRIGGER patches_count_insert AFTER INSERT ON patches REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION patch_status_deltas_record()",
    "CREATE TRIGGER patches_count_update AFTER UPDATE ON patches REFERENCING OLD TABLE AS removed NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION patch_status_deltas_record()",
    "CREATE TRIGGER patches_count_delete AFTER DELETE ON patches REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION patch_status_deltas_record()",
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER patches_count_insert AFTER INSERT ON patches "
    "BEGIN INSERT INTO patch_status_deltas (status, delta) VALUES (NEW.status, 1); END",
    "CREATE TRIGGER patches_count_update AFTER UPDATE OF status ON patches WHEN OLD.status <> NEW.status "
    "BEGIN INSERT INTO patch_status_deltas (status, delta) VALUES (OLD.status, -1), (NEW.status, 1); END",
    "CREATE TRIGGER patches_count_delete AFTER DELETE ON patches "
    "BEGIN INSERT INTO patch_status_deltas (status, delta) VALUES (OLD.status, -1); END",
)
TRIGGER_NAMES = ("patches_count_insert", "patches_count_update", "patches_count_delete")


def upgrade() -> None:
    op.create_table(
        'patch_status_deltas',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('delta', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.execute("INSERT INTO patch_status_deltas (status, delta) SELECT status, count(*) FROM patches GROUP BY status")
    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        statements = PG_TRIGGERS
    else:
        statements = SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON patches" if op.get_context().dialect.name == "postgresql" else ""))
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS patch_status_deltas_record()")
    op.drop_table('patch_status_deltas')
