"""Threaded discussion on a patch."""

import uuid
from collections.abc import Sequence

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import PatchEventKind
from db.models import Comment
from db.services import audit, patches
from db.services.actor import Actor
from db.services.errors import BadUserInput, Forbidden, NotFound
from db.services.validation import LIMITS, text_field


async def add(*, session: AsyncSession, actor: Actor, patch_id: str, body: str, parent_id: str | None = None) -> Comment:
    actor.require("comment", "commenting")
    body = text_field(body, field="body", max_length=LIMITS["comment"], required=True, multiline=True)
    parent = patches.parse_id(parent_id, field="parentId") if parent_id is not None else None
    patch = await patches.get(session=session, patch_id=patch_id)
    if patch is None:
        raise NotFound(f"patch {patch_id} not found")
    if patch.requires_escalation and not actor.can("decide_escalated") and patches.is_open(patch):
        raise Forbidden("this patch requires escalation: only a LEAD or ADMIN may comment on it")
    if parent is not None:
        parent_comment = await session.get(Comment, parent)
        if parent_comment is None or parent_comment.patch_id != patch.id:
            raise BadUserInput("parentId is not a comment on this patch", field="parentId")
    comment = Comment(id=uuid.uuid4(), patch_id=patch.id, parent_id=parent, author=actor.subject, body=body)
    session.add(comment)
    await session.flush()
    await audit.append(
        session=session,
        decision_id=patch.id,
        action=PatchEventKind.COMMENTED.value,
        actor=actor,
        details={"patchId": patch.patch_id, "commentId": str(comment.id), "parentId": str(parent) if parent else None, "body": body},
    )
    return comment


async def for_patches(*, session: AsyncSession, patch_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Comment]]:
    rows = (await session.exec(select(Comment).where(Comment.patch_id.in_(list(patch_ids))).order_by(Comment.created_at, Comment.id))).all()
    grouped: dict[uuid.UUID, list[Comment]] = {patch_id: [] for patch_id in patch_ids}
    for row in rows:
        grouped[row.patch_id].append(row)
    return grouped
