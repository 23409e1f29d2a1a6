"""submitPatches: up to MAX_BATCH submissions in one transaction, idempotent per patchId, results in input order.

Every item is validated before anything is written (a bad one names its index and nothing is written); the model
explains all new patches in one call, off the event loop; the new rows go in one INSERT and their SUBMITTED entries
in one audit append."""

import asyncio
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from db.models import Patch
from db.services import auto_approval, submission
from db.services.actor import Actor
from db.services.auto_approval import ActiveModel
from db.services.errors import BadUserInput
from db.services.policy import Policy

MAX_BATCH = 500


def _built(items: Sequence[submission.SubmitPatchData], actor: Actor, policy: Policy) -> list[Patch]:
    if not 1 <= len(items) <= MAX_BATCH:
        raise BadUserInput(f"inputs must hold 1 to {MAX_BATCH} submissions", field="inputs")
    built = []
    for index, (data, id_) in enumerate(zip(items, submission.new_ids(len(items)), strict=True)):
        try:
            built.append(submission.build(data, actor=actor, policy=policy, id=id_))
        except BadUserInput as exc:
            raise BadUserInput(f"inputs[{index}]: {exc.message}", field=exc.field, index=index) from None
    return built


def _prepared(
    items: Sequence[submission.SubmitPatchData], actor: Actor, policy: Policy, model: ActiveModel | None
) -> list[submission.Prepared]:
    """Validation, the model's explanations (one call for every new row) and the derived flags: pure CPU work, run in
    a worker thread so that a batch of 500 does not hold the event loop (live pages, other requests) meanwhile.
    A repeated patchId is prepared once: `submission.write` returns the first item's patch for it."""
    built = _built(items, actor, policy)
    firsts: dict[str, Patch] = {}
    for row in built:
        firsts.setdefault(row.patch_id, row)
    unexplained = [row for row in firsts.values() if row.ml_prediction is None]
    if model is not None and unexplained:
        for row, prediction in zip(unexplained, model.predict_many(unexplained), strict=True):
            row.ml_prediction = {**prediction, "source": "model"}
    thresholds = {key: auto_approval.derive_flags(patch=row, policy=policy, model=model) for key, row in firsts.items()}
    return [submission.Prepared(row, actor, thresholds[row.patch_id]) for row in built]


async def submit_many(
    *, session: AsyncSession, actor: Actor, items: Sequence[submission.SubmitPatchData], policy: Policy, model: ActiveModel | None = None
) -> list[tuple[Patch, bool]]:
    """(patch, created) per item, in input order. An item whose patchId exists, or repeats an earlier item of the
    batch, returns the stored (or earlier) patch with created false, as submitPatch would."""
    actor.require("submit", "submitting patches")
    return await submission.write(session=session, items=await asyncio.to_thread(_prepared, items, actor, policy, model))
