"""What a submission writes: the derived flags are computed before the INSERT, so a new patch is one INSERT and one
audit append (the auto-approval adds its UPDATE, and its entry to that append, when it applies); a repeat writes
nothing."""

import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import event, inspect

from db.engine import Database
from db.enums import PatchStatus
from db.models import Patch, column_values, new_row
from db.services import audit_log
from db.types import utcnow
from tests.support.factories import confident_prediction, passing_wargaming, submit


@contextmanager
def statements(db: Database):
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        seen.append(" ".join(statement.split()).upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


def _count(seen: list[str], fragment: str) -> int:
    return sum(fragment in statement for statement in seen)


async def test_a_new_patch_is_one_insert_and_one_audit_entry(database):
    with statements(database) as seen:
        patch = await submit(database, wargaming=passing_wargaming())
    assert patch.status == PatchStatus.PENDING.value and patch.version == 1
    assert _count(seen, "INSERT INTO PATCHES") == 1
    assert _count(seen, "UPDATE PATCHES") == 0, seen  # the flags went in with the INSERT
    assert _count(seen, "FOR UPDATE") == 0, seen  # the row just inserted is not locked again
    assert _count(seen, "HITL_AUDIT_APPEND") + _count(seen, "INSERT INTO AUDIT_LOG") == 1, seen
    assert not any(statement.startswith("SELECT") and "FROM PATCHES" in statement for statement in seen), seen


async def test_an_auto_approved_patch_adds_its_decision_and_nothing_else(database):
    with statements(database) as seen:
        patch = await submit(database, wargaming=passing_wargaming(), ml_prediction=confident_prediction(), severity="LOW")
    assert patch.status == PatchStatus.AUTO_APPROVED.value and patch.version == 2
    assert _count(seen, "INSERT INTO PATCHES") == 1
    assert _count(seen, "UPDATE PATCHES") == 1, seen  # the decision, with its own audit entry
    # PostgreSQL: both entries (SUBMITTED, AUTO_APPROVED) in one call of hitl_audit_append_many; SQLite: two INSERTs.
    assert _count(seen, "HITL_AUDIT_APPEND_MANY") + _count(seen, "INSERT INTO AUDIT_LOG") == (1 if database.dialect == "postgresql" else 2), seen
    async with database.read() as session:
        trail = (await audit_log.trails(session=session, decision_ids=[patch.id]))[patch.id]
    assert [entry.action for entry in trail] == ["SUBMITTED", "AUTO_APPROVED"]
    update = next(statement for statement in seen if "UPDATE PATCHES" in statement)
    written = update[update.index("UPDATE PATCHES"):]
    assert "STATUS=" in written.replace(" ", "") and not any(name in written for name in ("ML_PREDICTION", "PACKAGE_NAME", "PATCH_ID")), written


async def test_a_repeated_submission_writes_nothing(database):
    first = await submit(database, patch_id="REPEAT-1")
    with statements(database) as seen:
        again = await submit(database, patch_id="REPEAT-1")
    assert again.id == first.id
    assert _count(seen, "HITL_AUDIT_APPEND") + _count(seen, "INSERT INTO AUDIT_LOG") + _count(seen, "UPDATE PATCHES") == 0, seen


def test_new_row_is_the_row_the_model_builds_without_pending_changes():
    values = {
        "id": uuid.uuid4(), "patch_id": "P-1", "apv_id": "A-1", "package_name": "openssl", "current_version": "3.0.1",
        "target_version": "3.0.2", "version_bump": "PATCH", "severity": "HIGH", "priority": "HIGH", "priority_rank": 1,
        "status": "PENDING", "submitted_by": "svc", "created_at": utcnow(), "updated_at": utcnow(),
    }
    built, modelled = new_row(Patch, **values), Patch(**values)
    assert column_values(built) == column_values(modelled)  # the defaults of the columns not given included
    assert inspect(built).committed_state == {} and inspect(modelled).committed_state
    assert new_row(Patch, **values).cwe_ids is not built.cwe_ids  # a mutable default is not shared
    built.status = "APPROVED"
    assert set(inspect(built).committed_state) == {"status"}
    with pytest.raises(TypeError, match="required"):
        new_row(Patch, **{k: v for k, v in values.items() if k != "patch_id"})
    with pytest.raises(TypeError, match="no column colour"):
        new_row(Patch, **values, colour="red")



async def test_json_columns_hold_what_the_standard_library_would_have_written(database):
    """The JSON columns' serializer is orjson (speed): a value reads back as json.dumps + json.loads would give it,
    non-ASCII text, nested structures, exact floats and integer keys (as strings) included."""
    import json

    from sqlalchemy import text

    from db.engine import json_text
    from db.services import submission
    from tests.support.factories import POLICY, SERVICE, patch_data

    evidence = {"exploit": "rénové 漏洞 \u2028 \"quoted\" \\ \n", "nested": [{"a": [1, 2.5, None, True]}, []],
                "floats": [0.1, 1e-05, 1e16, -0.0, 123456789.123456789], "big": 2**62, 3: "int key"}
    expected = json.loads(json.dumps(evidence))
    assert json.loads(json_text(evidence)) == expected
    patch = submission.build(patch_data(), actor=SERVICE, policy=POLICY)
    patch.wargaming = evidence
    async with database.write() as session:
        session.add(patch)
    async with database.read() as session:
        connection = await session.connection()
        stored = (await connection.execute(text("SELECT wargaming FROM patches WHERE patch_id = :p"), {"p": patch.patch_id})).scalar_one()
    assert (json.loads(stored) if isinstance(stored, str) else stored) == expected
