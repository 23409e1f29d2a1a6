"""The model registry: trainModel activates only a model at least as good as the active one on the same held-out
rows, keeps a worse one inactive with the comparison, and activateModel rolls back and forward (audited)."""

import pytest
from sqlmodel import select

from db.models import AuditEntry
from db.services import ml_models
from db.services.errors import Forbidden, NotFound
from db.services.policy import Policy
from ml.demo import load_patches
from ml.service import train_and_activate
from ml.synthetic import generate_patches
from tests.support.factories import ADMIN, REVIEWER
from tests.support.guard import NOW


async def test_worse_model_stays_inactive_and_activate_model_rolls_back(database):
    await load_patches(database, [p for p in generate_patches(1500, seed=5, now=NOW) if p.status not in ("PENDING", "ESCALATED")])
    first = await train_and_activate(db=database, actor=ADMIN, policy=Policy(), nthread=1)
    assert first.active and first.metrics["comparison"] == {"against": None, "activate": True, "reason": "no active model"}

    # One boosting round: a real, worse model, judged on the rows neither model trained on.
    worse = await train_and_activate(db=database, actor=ADMIN, policy=Policy(), nthread=1, max_rounds=1)
    comparison = worse.metrics["comparison"]
    assert not worse.active and not comparison["activate"] and comparison["against"] == first.version
    assert comparison["rows"] == first.metrics["split"]["test"]
    assert comparison["candidate"]["logLoss"] > comparison["active"]["logLoss"] and "worse than the active model" in comparison["reason"]

    # The same history again gives an equal model: "at least as good" activates it.
    again = await train_and_activate(db=database, actor=ADMIN, policy=Policy(), nthread=1)
    assert again.active and again.metrics["comparison"]["activate"]
    assert again.metrics["comparison"]["candidate"] == again.metrics["comparison"]["active"]

    async with database.read() as session:
        listed = await ml_models.newest(session=session, first=20)
        assert [m.version for m in listed] == [again.version, worse.version, first.version]
        assert [m.active for m in listed] == [True, False, False]

    async with database.write() as session:
        rolled = await ml_models.activate(session=session, actor=ADMIN, version=first.version)
    assert rolled.active
    async with database.write() as session:
        with pytest.raises(Forbidden):
            await ml_models.activate(session=session, actor=REVIEWER, version=worse.version)
    async with database.write() as session:
        with pytest.raises(NotFound):
            await ml_models.activate(session=session, actor=ADMIN, version="xgb-none")
    async with database.read() as session:
        assert (await ml_models.active(session=session)).version == first.version
        entries = (await session.exec(select(AuditEntry).where(AuditEntry.action == "MODEL_ACTIVATED").order_by(AuditEntry.seq))).all()
    assert [(e.details["version"], e.actor) for e in entries] == [(first.version, "adam"), (again.version, "adam"), (first.version, "adam")]
    assert entries[-1].details["previous"] == again.version and entries[-1].details["byHand"]
