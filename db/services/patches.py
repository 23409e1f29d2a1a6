"""Reading patches and the one way every patch change is recorded (version bump + audit row)."""

import uuid
from collections.abc import Sequence

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from db.enums import FINAL_STATUSES, PatchStatus
from db.models import Approval, Patch
from db.services import audit
from db.services.actor import Actor
from db.services.errors import BadUserInput, Conflict, NotFound
from db.services.validation import LIMITS, text_field
from db.types import utcnow


def parse_id(value: str | uuid.UUID, *, field: str = "id") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadUserInput(f"{field} is not a valid id", field=field) from None


async def get(*, session: AsyncSession, patch_id: str | uuid.UUID) -> Patch | None:
    return await session.get(Patch, parse_id(patch_id))


async def get_by_patch_id(*, session: AsyncSession, upstream_id: str) -> Patch | None:
    # Checked like the submitted value: a NUL or a lone surrogate must not reach the database (PostgreSQL refuses both).
    upstream_id = text_field(upstream_id, field="patchId", max_length=LIMITS["identifier"])
    return (await session.exec(select(Patch).where(Patch.patch_id == upstream_id))).first()


async def get_many(*, session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Patch]:
    rows = (await session.exec(select(Patch).where(Patch.id.in_(list(ids))))).all()
    return {row.id: row for row in rows}


async def lock(*, session: AsyncSession, patch_id: str | uuid.UUID) -> Patch:
    """Load the latest committed row and hold it until commit (PostgreSQL row lock; SQLite writes are serialized)."""
    statement = select(Patch).where(Patch.id == parse_id(patch_id)).with_for_update().execution_options(populate_existing=True)
    patch = (await session.exec(statement)).first()
    if patch is None:
        raise NotFound(f"patch {patch_id} not found")
    return patch


def conflict(patch: Patch, message: str) -> Conflict:
    return Conflict(message, current_status=patch.status, current_version=patch.version)


def require_open(patch: Patch, what: str) -> None:
    if patch.status in {status.value for status in FINAL_STATUSES}:
        raise conflict(patch, f"cannot {what}: patch is {patch.status}")


def check_expected_version(patch: Patch, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != patch.version:
        raise conflict(patch, f"patch changed: expected version {expected_version}, current version {patch.version}")


async def record(*, session: AsyncSession, patch: Patch, action: str, actor: Actor, details: dict) -> None:
    """Persist a change to `patch` together with exactly one audit entry."""
    patch.version += 1
    patch.updated_at = utcnow()
    session.add(patch)
    await session.flush()
    await audit.append(
        session=session,
        decision_id=patch.id,
        action=action,
        actor=actor,
        details={"patchId": patch.patch_id, "status": patch.status, "version": patch.version, **details},
    )


async def approvals_for(*, session: AsyncSession, patch_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Approval]]:
    rows = (
        await session.exec(select(Approval).where(Approval.patch_id.in_(list(patch_ids))).order_by(Approval.at, Approval.id))
    ).all()
    grouped: dict[uuid.UUID, list[Approval]] = {patch_id: [] for patch_id in patch_ids}
    for row in rows:
        grouped[row.patch_id].append(row)
    return grouped


async def approvers(*, session: AsyncSession, patch_id: uuid.UUID) -> list[str]:
    """Who has approved this patch so far (the decision path needs no Approval objects)."""
    return list((await session.exec(select(Approval.approver).where(Approval.patch_id == patch_id))).all())


def is_open(patch: Patch) -> bool:
    return patch.status in (PatchStatus.PENDING.value, PatchStatus.ESCALATED.value)
