"""Per-request DataLoaders: one query per relation per page, never one per patch."""

import uuid
from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from db.engine import Database
from db.services import audit_log, comments, patches


@dataclass
class Loaders:
    approvals: DataLoader
    comments: DataLoader
    audit_trails: DataLoader


def create_loaders(db: Database, *, cache: bool = True) -> Loaders:
    def grouped(fetch):  # noqa: ANN001, ANN202
        async def load(keys: list[uuid.UUID]) -> list[list]:
            async with db.read() as session:
                found = await fetch(session, list(dict.fromkeys(keys)))
            return [found.get(key, []) for key in keys]

        return DataLoader(load_fn=load, max_batch_size=500, cache=cache)

    return Loaders(
        approvals=grouped(lambda session, ids: patches.approvals_for(session=session, patch_ids=ids)),
        comments=grouped(lambda session, ids: comments.for_patches(session=session, patch_ids=ids)),
        audit_trails=grouped(lambda session, ids: audit_log.trails(session=session, decision_ids=ids)),
    )
