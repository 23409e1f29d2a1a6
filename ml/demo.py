"""`hitl demo`: SYNTHETIC history (ml.synthetic) written through the audit log, so the chain stays whole."""

from sqlalchemy import func
from sqlmodel import select

from db.engine import Database
from db.enums import PatchEventKind, PatchStatus
from db.models import Patch
from db.services import audit
from db.services.actor import Actor, system_actor
from db.services.auto_approval import derive_flags
from db.services.errors import Conflict
from ml.service import RETRAIN_ACTOR, ModelHolder, train_and_activate
from ml.synthetic import generate_patches
from ml.training_job import TrainingJob

DEMO_ACTOR = "synthetic:demo-loader"
_FINAL_EVENT = {
    PatchStatus.APPROVED.value: PatchEventKind.APPROVED,
    PatchStatus.REJECTED.value: PatchEventKind.REJECTED,
    PatchStatus.AUTO_APPROVED.value: PatchEventKind.AUTO_APPROVED,
    PatchStatus.CANCELLED.value: PatchEventKind.CANCELLED,
    PatchStatus.ESCALATED.value: PatchEventKind.ESCALATED,
}


async def is_empty(db: Database) -> bool:
    async with db.read() as session:
        return (await session.exec(select(func.count()).select_from(Patch))).one() == 0


async def load_patches(db: Database, patches: list[Patch], *, batch: int = 200) -> None:
    for start in range(0, len(patches), batch):
        async with db.write() as session:
            for patch in patches[start : start + batch]:
                session.add(patch)
                await session.flush()
                details = {"patchId": patch.patch_id, "synthetic": True, "status": PatchStatus.PENDING.value, "version": 1}
                await audit.append(session=session, decision_id=patch.id, action=PatchEventKind.SUBMITTED.value, actor=Actor(patch.submitted_by), details=details)
                final = _FINAL_EVENT.get(patch.status)
                if final is not None:
                    who = Actor(patch.decided_by or DEMO_ACTOR)
                    details = {"patchId": patch.patch_id, "synthetic": True, "status": patch.status, "reason": patch.reason}
                    await audit.append(session=session, decision_id=patch.id, action=final.value, actor=who, details=details)


async def load_demo(job: TrainingJob, *, count: int, seed: int) -> str:
    """Decided history first, then a model trained on it, then the open patches with its predictions."""
    policy = job.policy
    db = Database.from_url(job.database_url, pool_min=1, pool_max=2)
    try:
        patches = generate_patches(count, seed=seed)
        open_patches = [p for p in patches if p.status in (PatchStatus.PENDING.value, PatchStatus.ESCALATED.value)]
        await load_patches(db, [p for p in patches if p not in open_patches])
        holder = ModelHolder()
        try:
            model = await train_and_activate(db=db, actor=system_actor(RETRAIN_ACTOR), policy=policy, nthread=job.nthread)
            trained = f"; model {model.version} trained (threshold {model.threshold})"
            predictor = await holder.refresh(db)
        except Conflict as exc:
            trained, predictor = f"; no model trained ({exc})", None
        for patch in open_patches:
            if predictor is not None and patch.ml_prediction is None:
                patch.ml_prediction = {**predictor.predict(patch), "source": "model"}
            derive_flags(patch=patch, policy=policy, model=predictor)
        await load_patches(db, open_patches)
    finally:
        await db.dispose()
    return f"loaded {len(patches)} SYNTHETIC demo patches{trained}"
