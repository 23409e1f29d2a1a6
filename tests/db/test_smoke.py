from db.enums import PatchStatus
from db.services import audit, decisions
from tests.support.factories import REVIEWER, submit


async def test_submit_and_approve(database):
    patch = await submit(database)
    assert patch.status == PatchStatus.PENDING.value
    async with database.write() as session:
        approved = await decisions.approve(session=session, actor=REVIEWER, patch_id=str(patch.id), comment="ok")
    assert approved.status == "APPROVED" and approved.version == 2
    async with database.read() as session:
        report = await audit.verify_chain(session=session)
    assert report.valid and report.entries_checked == 2
