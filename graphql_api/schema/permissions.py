"""Permission classes: one per capability of db.services.actor.CAPABILITIES (the single role table)."""

from typing import Any

import strawberry
from strawberry.permission import BasePermission

from db.services.actor import CAPABILITIES


class _Capability(BasePermission):
    capability = "read"
    message = "not allowed"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        # Raises UNAUTHENTICATED without a valid credential and FORBIDDEN without the role.
        info.context.actor().require(self.capability, f"'{info.field_name}'")
        return True


def _permission(capability: str) -> type[BasePermission]:
    assert capability in CAPABILITIES
    return type(f"Can{capability.title().replace('_', '')}", (_Capability,), {"capability": capability})


CanRead = _permission("read")
CanSubmit = _permission("submit")
CanRecordEvidence = _permission("record_evidence")
CanDecide = _permission("decide")
CanEscalate = _permission("escalate")
CanComment = _permission("comment")
CanCancel = _permission("cancel")
CanAdminister = _permission("administer")


class IsAuthenticated(BasePermission):
    """Any verified caller, with no role too (`me`: API.md, "Single sign-on")."""

    message = "not authenticated"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        info.context.actor()  # raises UNAUTHENTICATED without a valid credential
        return True
