"""/metrics during a database outage (issue 22): the scrape never waits on the database, unknown values are NaN
rather than 0, and hitl_db_up / hitl_db_last_success_timestamp_seconds say how the last background read went.
Over a real server and a real PostgreSQL behind a relay that can be made to hang (tests/support/stalling_relay.py)."""

import asyncio
import math
import time

import pytest
from sqlalchemy.engine import make_url

from db.engine import Database
from graphql_api.metrics import Metrics

from tests.support.pg import pg_admin
from tests.support.server import LEAD, closed_port, metrics, running, settings_for, submit, value
from tests.support.stalling_relay import StallingRelay

DATABASE_GAUGES = (
    "hitl_pending_patches",
    "hitl_ml_accuracy",
    "hitl_auto_approval_rate",
    "hitl_rejection_rate",
    "hitl_audit_head_seq",
    "hitl_oldest_pending_patch_age_seconds",
    "hitl_db_last_success_timestamp_seconds",
)
# A scrape's bound, far below any database timeout involved (the background read's, the pool's).
SCRAPE_BOUND_SECONDS = 1.0


def relayed(url: str, relay: StallingRelay) -> str:
    return make_url(url).set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)


async def wait_for(condition, *, within: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}")
        await asyncio.sleep(0.1)


async def timed_scrape(api) -> tuple[float, dict]:  # noqa: ANN001
    started = time.monotonic()
    samples = await metrics(api, fresh=False)
    return time.monotonic() - started, samples


async def test_a_pod_that_never_reached_its_database_exports_unknown_not_zero():
    async with running(settings_for(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/hitl")) as api:
        samples = await metrics(api)  # one more read, failed like the background one
    assert value(samples, "hitl_db_up") == 0
    for name in DATABASE_GAUGES:
        assert math.isnan(value(samples, name)), (name, value(samples, name))


def test_gauges_are_nan_before_the_first_read():
    unread = Metrics()  # as a process starts
    samples = {family.name: family.samples[0].value for family in unread.registry.collect() if family.samples}
    for name in (*DATABASE_GAUGES, "hitl_db_up"):
        assert math.isnan(samples[name]), name


async def test_the_first_read_makes_them_known(pg_database_url):
    async with running(settings_for(pg_database_url)) as api:
        before = time.time()
        samples = await metrics(api)
    assert value(samples, "hitl_db_up") == 1
    assert value(samples, "hitl_pending_patches") == 0
    assert value(samples, "hitl_oldest_pending_patch_age_seconds") == 0  # nobody waits: known, and zero
    assert before <= value(samples, "hitl_db_last_success_timestamp_seconds") <= time.time()
    # No decision yet: the rates and the accuracy are unknown, not 0 %.
    for name in ("hitl_auto_approval_rate", "hitl_rejection_rate", "hitl_ml_accuracy"):
        assert math.isnan(value(samples, name)), name


async def test_oldest_pending_age_counts_while_nobody_decides(database_url):
    async with running(settings_for(database_url)) as api:
        first = await submit(api, 1)
        await asyncio.sleep(1.0)
        await submit(api, 2, severity="LOW")
        await asyncio.sleep(0.2)
        samples = await metrics(api)
        assert 1.0 <= value(samples, "hitl_oldest_pending_patch_age_seconds") < 30
        await asyncio.sleep(1.0)  # ages between scrapes, without another read
        aged = value(await metrics(api, fresh=False), "hitl_oldest_pending_patch_age_seconds")
        assert aged >= value(samples, "hitl_oldest_pending_patch_age_seconds") + 0.9
        # The oldest goes; the other one (submitted later) is now the oldest.
        body = await api.gql('mutation($id: ID!) { cancelPatch(id: $id, reason: "superseded") { status } }', {"id": first["id"]}, as_=LEAD)
        assert "errors" not in body, body
        assert value(await metrics(api), "hitl_oldest_pending_patch_age_seconds") < aged - 0.5


@pytest.mark.parametrize("outage", ["hangs", "dropped"])
async def test_metrics_answer_at_once_while_the_database_hangs_or_is_gone(pg_database_url, outage):
    with StallingRelay(make_url(pg_database_url).port or 5432) as relay:
        settings = settings_for(relayed(pg_database_url, relay), metrics_refresh_seconds=0.2, metrics_refresh_timeout_seconds=1.0)
        async with running(settings) as api:
            await submit(api, 1)
            await wait_for(lambda: _gauge(api, "hitl_pending_patches", 1), within=10, what="the background read sees the patch")
            last_success = value(await metrics(api, fresh=False), "hitl_db_last_success_timestamp_seconds")

            if outage == "hangs":
                relay.stall()
            else:
                await pg_admin(f'DROP DATABASE IF EXISTS "{make_url(pg_database_url).database}" WITH (FORCE)')
            await wait_for(lambda: _gauge(api, "hitl_db_up", 0), within=10, what="hitl_db_up becomes 0")
            for _ in range(5):
                elapsed, samples = await timed_scrape(api)
                assert elapsed < SCRAPE_BOUND_SECONDS, f"/metrics took {elapsed:.2f} s with the database {outage}"
                assert value(samples, "hitl_db_up") == 0
                # The last values read stay, and say how old they are.
                assert value(samples, "hitl_pending_patches") == 1
                assert value(samples, "hitl_db_last_success_timestamp_seconds") <= time.time() - 0.2
                await asyncio.sleep(0.3)
            assert value(samples, "hitl_db_last_success_timestamp_seconds") >= last_success
            health = await api.client.get(f"{api.base}/health")
            assert health.status_code == 200

            if outage == "hangs":
                relay.resume()
                await wait_for(lambda: _gauge(api, "hitl_db_up", 1), within=15, what="hitl_db_up is 1 again once the database answers")


async def _gauge(api, name: str, expected: float) -> bool:  # noqa: ANN001
    return value(await metrics(api, fresh=False), name) == expected


async def test_a_caller_whose_time_ran_out_leaves_the_read_to_one_still_waiting(pg_database_url):
    """Two callers share the one read in flight: the one with the shorter timeout gives up, and the read goes on
    for the other (seen in CI: the background refresher's 5 s cancelled the read a test waited 30 s for)."""
    with StallingRelay(make_url(pg_database_url).port or 5432) as relay:
        db = Database.from_url(relayed(pg_database_url, relay), pool_min=1, pool_max=2)
        try:
            gauges = Metrics()
            relay.stall()
            patient = asyncio.create_task(gauges.refresh(db, timeout=30))
            assert await gauges.refresh(db, timeout=0.5) is False
            relay.resume()
            assert await patient is True
            samples = {family.name: family.samples[0].value for family in gauges.registry.collect() if family.samples}
            assert samples["hitl_db_up"] == 1 and samples["hitl_pending_patches"] == 0
            # Nobody waits any more when the last caller's time runs out: the hung read is dropped.
            relay.stall()
            assert await gauges.refresh(db, timeout=0.5) is False
            assert gauges._reading.cancelling() or gauges._reading.cancelled()
        finally:
            relay.resume()
            await db.dispose()
