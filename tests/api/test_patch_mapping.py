"""Patch.from_model: the API's view of a row, read from the instance's loaded values, equals the ORM's view of it,
including for a row whose columns were expired (read again through the ORM)."""

import dataclasses
from datetime import timedelta

from sqlmodel import select

from db.models import Patch as PatchRow
from db.services import submission
from db.types import utcnow
from graphql_api.schema.types.patch import Patch
from tests.support.factories import POLICY, SERVICE, confident_prediction, patch_data, submit


def _through_the_orm(row: PatchRow, now) -> dict:  # noqa: ANN001
    """What from_model must give, every value read through the ORM's attributes."""
    mapped = dataclasses.asdict(Patch.from_model(row, now))
    for name in ("patch_id", "apv_id", "cve_id", "package_name", "cvss_score", "diff", "decided_by", "version", "created_at",
                 "sla_deadline", "required_approvals", "requires_escalation", "auto_approval_eligible", "ml_wargaming_agreement"):
        assert mapped[name] == getattr(row, name), name
    assert mapped["id"] == str(row.id)
    assert (mapped["status"].value, mapped["severity"].value, mapped["priority"].value, mapped["version_bump"].value) == (
        row.status, row.severity, row.priority, row.version_bump
    )
    assert mapped["cwe_ids"] == row.cwe_ids and mapped["cwe_ids"] is not row.cwe_ids
    return mapped


async def test_a_new_row_and_a_loaded_one_map_alike(database):
    built = submission.build(patch_data(cwe_ids=["CWE-79"], severity="LOW"), actor=SERVICE, policy=POLICY)
    _through_the_orm(built, utcnow())
    stored = await submit(database, ml_prediction=confident_prediction(), cwe_ids=["CWE-20", "CWE-79"])
    async with database.read() as session:
        loaded = (await session.exec(select(PatchRow).where(PatchRow.id == stored.id))).one()
    now = utcnow() + timedelta(minutes=5)
    assert _through_the_orm(loaded, now)["age_seconds"] >= 300


async def test_an_expired_row_is_read_again_through_the_orm(database):
    stored = await submit(database)
    async with database.write() as session:
        row = (await session.exec(select(PatchRow).where(PatchRow.id == stored.id))).one()
        row.status = "REJECTED"  # changed in the database behind the loaded row
        await session.flush()
        session.expire(row, ["status", "version"])
        assert "status" not in row.__dict__
        # In a sync context of the session (as in the ORM's own loads), where an expired attribute may be loaded.
        mapped = await session.run_sync(lambda _session: _through_the_orm(row, utcnow()))
        assert mapped["status"].value == "REJECTED"
