"""The guard, the registry and batch intake under the least-privilege application role production runs as
(`hitl db grant-app-role`): every write they make is one its grants allow."""

import pytest
from sqlalchemy.engine import make_url

from db.engine import Database
from db.roles import grant_application_role
from db.services import auto_approval, batch_submission, guard, ml_models
from db.services.policy import Policy
from tests.support import guard as scenario
from tests.support.factories import ADMIN, SERVICE
from tests.support.pg import login_role

pytestmark = pytest.mark.postgres_only


async def test_the_application_role_trips_the_guard_resumes_and_rolls_back(pg_database_url):
    async with login_role(pg_database_url) as role:
        granted = await grant_application_role(pg_database_url, role)
        assert granted["auto_approval_outcomes"] == "SELECT, INSERT"
        db = Database.from_url(make_url(pg_database_url).set(username=role).render_as_string(hide_password=False))
        try:
            async with db.write() as session:
                first = await ml_models.store_and_activate(session=session, actor=ADMIN, model=scenario.model_row("xgb-app-role-1"))
                await ml_models.store_and_activate(session=session, actor=ADMIN, model=scenario.model_row("xgb-app-role-2"))
                rolled_back = await ml_models.activate(session=session, actor=ADMIN, version=first.version)
            assert rolled_back.active

            items = scenario.stream(3000, seed=11, shift=scenario.SHIFT)
            approved, failed, paused = await scenario.submit_and_report(db, items[:1500], scenario.predictor())
            assert paused and 1 <= failed <= Policy().guard_max_failures, (approved, failed)

            async with db.write() as session:
                await auto_approval.set_paused(session=session, actor=ADMIN, paused=False, reason="family pinned upstream")
            async with db.read() as session:
                assert not (await guard.report(session=session, policy=Policy())).tripped

            data = [scenario.submission_data(patch) for patch, _ in items[1500:1600]]
            async with db.write() as session:
                results = await batch_submission.submit_many(session=session, actor=SERVICE, items=data, policy=Policy(), model=None)
            assert len(results) == 100 and all(created for _, created in results)
        finally:
            await db.dispose()
