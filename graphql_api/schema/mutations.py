"""Mutations: parse → authorize (permission class) → one service call in one transaction → map."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import FINAL_STATUS_VALUES, PatchStatus
from db.models import Patch as PatchRow
from db.services import auto_approval, batch_submission, comments, decisions, group_decisions, groups, guard, ml_models, submission
from db.services.actor import Actor
from graphql_api.schema import mapping
from graphql_api.schema.context import Context
from graphql_api.schema.permissions import CanAdminister, CanCancel, CanComment, CanDecide, CanEscalate, CanRecordEvidence, CanSubmit
from graphql_api.schema.types.inputs import SubmitPatchInput, WargamingInput
from graphql_api.schema.types.auto_approval import AutoApprovalState, MlModel
from graphql_api.schema.types.groups import GroupDecision, GroupDecisionResult
from graphql_api.schema.types.payloads import SubmitPatchPayload
from graphql_api.schema.types.patch import Comment, Patch
from graphql_api.schema.webhooks import WebhookMutations
from ml.service import train_and_activate

Info = strawberry.Info[Context, None]
T = TypeVar("T")


async def _in_transaction(info: Info, change: Callable[[AsyncSession, Actor], Awaitable[T]]) -> T:
    actor = info.context.actor()
    async with info.context.db.write() as session:
        return await change(session, actor)


async def _patch_change(info: Info, change: Callable[[AsyncSession, Actor], Awaitable[PatchRow]]) -> Patch:
    """Run a change to one patch; count a decision only once it is committed."""
    row = await _in_transaction(info, change)
    _count_decisions(info, [row])
    return Patch.from_model(row, info.context.now)


def _count_decisions(info: Info, rows: list[PatchRow]) -> None:
    for row in rows:
        if row.status in FINAL_STATUS_VALUES and row.decided_at is not None and row.decided_at >= info.context.now:
            info.context.services.metrics.record_decision(row.status, (row.decided_at - row.created_at).total_seconds())


@strawberry.type
class Mutation(WebhookMutations):
    @strawberry.mutation(permission_classes=[CanSubmit])
    async def submit_patch(self, info: Info, input: SubmitPatchInput) -> SubmitPatchPayload:  # noqa: A002
        services = info.context.services
        prepared = await submission.prepare(
            actor=info.context.actor(), data=input.to_data(), policy=services.policy, model=services.models.current
        )
        row, created = await services.submissions.submit(prepared)
        if created and row.status == PatchStatus.AUTO_APPROVED.value:
            services.metrics.record_decision(row.status, 0.0)
        return SubmitPatchPayload(patch=Patch.from_model(row, info.context.now), created=created)

    @strawberry.mutation(permission_classes=[CanSubmit], description="submitPatch for 1 to 500 inputs in one transaction, "
                         "idempotent per patchId, results in input order; a bad input is BAD_USER_INPUT with extensions.index.")
    async def submit_patches(self, info: Info, inputs: list[SubmitPatchInput]) -> list[SubmitPatchPayload]:
        services = info.context.services
        items = [item.to_data() for item in inputs]

        async def change(session: AsyncSession, actor: Actor):  # noqa: ANN202
            return await batch_submission.submit_many(session=session, actor=actor, items=items, policy=services.policy, model=services.models.current)

        results = await _in_transaction(info, change)
        for row, created in results:
            if created and row.status == PatchStatus.AUTO_APPROVED.value:
                services.metrics.record_decision(row.status, 0.0)
        return [SubmitPatchPayload(patch=Patch.from_model(row, info.context.now), created=created) for row, created in results]

    @strawberry.mutation(permission_classes=[CanDecide])
    async def decide_group(
        self,
        info: Info,
        key: str,
        decision: GroupDecision,
        reason: str | None = None,
        comment: str | None = None,
        expected_member_ids: list[strawberry.ID] | None = None,
    ) -> GroupDecisionResult:
        async def change(session: AsyncSession, actor: Actor):  # noqa: ANN202
            outcome = await group_decisions.decide_group(
                session=session, actor=actor, key=key, decision=decision, reason=reason, comment=comment,
                expected_member_ids=expected_member_ids,
            )
            return outcome, await groups.summary(session=session, key=outcome.key)

        outcome, summary = await _in_transaction(info, change)
        _count_decisions(info, outcome.applied)
        info.context.services.metrics.record_group_decision(decision.value, applied=len(outcome.applied), skipped=len(outcome.skipped))
        return GroupDecisionResult.from_outcome(outcome, summary, info.context.now)

    @strawberry.mutation(permission_classes=[CanRecordEvidence])
    async def record_wargaming_result(self, info: Info, id: strawberry.ID, input: WargamingInput) -> Patch:  # noqa: A002
        services = info.context.services
        return await _patch_change(
            info,
            lambda session, actor: submission.record_wargaming(
                session=session, actor=actor, patch_id=id, data=input.to_data(), policy=services.policy, model=services.models.current
            ),
        )

    @strawberry.mutation(permission_classes=[CanDecide])
    async def approve_patch(self, info: Info, id: strawberry.ID, comment: str | None = None, expected_version: int | None = None) -> Patch:  # noqa: A002
        return await _patch_change(
            info,
            lambda session, actor: decisions.approve(session=session, actor=actor, patch_id=id, comment=comment, expected_version=expected_version),
        )

    @strawberry.mutation(permission_classes=[CanDecide])
    async def reject_patch(
        self, info: Info, id: strawberry.ID, reason: str, comment: str | None = None, expected_version: int | None = None  # noqa: A002
    ) -> Patch:
        return await _patch_change(
            info,
            lambda session, actor: decisions.reject(
                session=session, actor=actor, patch_id=id, reason=reason, comment=comment, expected_version=expected_version
            ),
        )

    @strawberry.mutation(permission_classes=[CanEscalate])
    async def escalate_patch(self, info: Info, id: strawberry.ID, reason: str, expected_version: int | None = None) -> Patch:  # noqa: A002
        return await _patch_change(
            info, lambda session, actor: decisions.escalate(session=session, actor=actor, patch_id=id, reason=reason, expected_version=expected_version)
        )

    @strawberry.mutation(permission_classes=[CanCancel])
    async def cancel_patch(self, info: Info, id: strawberry.ID, reason: str, expected_version: int | None = None) -> Patch:  # noqa: A002
        return await _patch_change(
            info, lambda session, actor: decisions.cancel(session=session, actor=actor, patch_id=id, reason=reason, expected_version=expected_version)
        )

    @strawberry.mutation(permission_classes=[CanComment])
    async def add_comment(self, info: Info, id: strawberry.ID, body: str, parent_id: strawberry.ID | None = None) -> Comment:  # noqa: A002
        row = await _in_transaction(
            info, lambda session, actor: comments.add(session=session, actor=actor, patch_id=id, body=body, parent_id=parent_id)
        )
        return Comment.from_model(row)

    @strawberry.mutation(permission_classes=[CanAdminister])
    async def train_model(self, info: Info) -> MlModel:
        services = info.context.services
        row = await train_and_activate(db=services.db, actor=info.context.actor(), policy=services.policy, nthread=services.settings.ml_nthread)
        await services.models.refresh(services.db)
        return mapping.ml_model(row)

    @strawberry.mutation(permission_classes=[CanAdminister])
    async def set_auto_approval_paused(self, info: Info, paused: bool, reason: str) -> AutoApprovalState:
        services = info.context.services

        async def change(session: AsyncSession, actor: Actor):  # noqa: ANN202
            state = await auto_approval.set_paused(session=session, actor=actor, paused=paused, reason=reason)
            return state, await ml_models.active(session=session), await guard.report(session=session, policy=services.policy)

        state, model, report = await _in_transaction(info, change)
        threshold = auto_approval.threshold_in_force(services.policy, model)
        return mapping.auto_approval_state(state, services.policy, model, threshold, report)

    @strawberry.mutation(permission_classes=[CanAdminister], description="Roll back or forward to a model of the registry (audited).")
    async def activate_model(self, info: Info, version: str) -> MlModel:
        services = info.context.services
        row = await _in_transaction(info, lambda session, actor: ml_models.activate(session=session, actor=actor, version=version))
        await services.models.refresh(services.db)
        return mapping.ml_model(row)

    @strawberry.mutation(permission_classes=[CanRecordEvidence])
    async def record_deployment_outcome(self, info: Info, id: strawberry.ID, success: bool, details: str | None = None) -> Patch:  # noqa: A002
        policy = info.context.services.policy
        return await _patch_change(
            info,
            lambda session, actor: decisions.record_outcome(
                session=session, actor=actor, patch_id=id, success=success, details=details, policy=policy
            ),
        )
