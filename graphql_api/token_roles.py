"""The roles a verified token's claims give: `roles` holding role names (HS256 tokens of `hitl token`), or, for
tokens verified with an IdP's keys, the values of HITL_ROLES_CLAIM through HITL_ROLE_MAP."""

from collections.abc import Mapping

from db.enums import Role


def parse_roles(values: object) -> frozenset[Role]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        return frozenset()
    known = {role.value for role in Role}
    return frozenset(Role(str(value).upper()) for value in values if str(value).upper() in known)


def claim_at(claims: Mapping, path: str) -> object:
    """The value at a dotted path (`realm_access.roles`); a claim whose own name has dots is found too."""
    if path in claims:
        return claims[path]
    value: object = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def mapped_roles(claims: Mapping, path: str, role_map: Mapping[str, Role]) -> frozenset[Role]:
    """The roles of `claims[path]` (a string or a list of them) through `role_map`; unmapped values are ignored.
    Without a map the values are role names."""
    values = claim_at(claims, path)
    if isinstance(values, str):
        values = values.split() if " " in values else [values]  # a space-separated string, like `scope`
    if not isinstance(values, list):
        return frozenset()
    if not role_map:
        return parse_roles(values)
    return frozenset(role_map[value] for value in values if isinstance(value, str) and value in role_map)
