"""Who is acting, with what roles, from where. Built by the API layer from the verified credential."""

from dataclasses import dataclass, field

from db.enums import Role
from db.services.errors import Forbidden

# What each role may do beyond reading (VIEWER may read everything).
CAPABILITIES: dict[str, frozenset[Role]] = {
    "submit": frozenset({Role.SERVICE, Role.ADMIN}),
    "record_evidence": frozenset({Role.SERVICE, Role.ADMIN}),
    "decide": frozenset({Role.REVIEWER, Role.LEAD, Role.ADMIN}),
    "decide_escalated": frozenset({Role.LEAD, Role.ADMIN}),
    "escalate": frozenset({Role.REVIEWER, Role.LEAD, Role.ADMIN}),
    "comment": frozenset({Role.REVIEWER, Role.LEAD, Role.ADMIN}),
    "cancel": frozenset({Role.LEAD, Role.ADMIN, Role.SERVICE}),
    "administer": frozenset({Role.ADMIN}),
    "read": frozenset(Role),
}


@dataclass(frozen=True)
class Actor:
    subject: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    ip_address: str | None = None
    user_agent: str | None = None

    def can(self, capability: str) -> bool:
        return bool(self.roles & CAPABILITIES[capability])

    def require(self, capability: str, what: str) -> None:
        if not self.can(capability):
            roles = ", ".join(sorted(role.value for role in CAPABILITIES[capability]))
            raise Forbidden(f"{what} needs one of the roles {roles}")


SYSTEM_ROLES = frozenset({Role.ADMIN})


def system_actor(subject: str) -> Actor:
    return Actor(subject=subject, roles=SYSTEM_ROLES)
