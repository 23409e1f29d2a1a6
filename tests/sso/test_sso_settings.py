"""The single sign-on settings (graphql_api/config.py) and the role mapping (graphql_api/token_roles.py)."""

import pytest
from pydantic import ValidationError

from db.enums import Role
from graphql_api.config import Settings
from graphql_api.token_roles import mapped_roles

ISSUER = "https://idp.example.com/realms/hitl"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def test_role_map_parses_pairs_and_role_names_in_any_case():
    parsed = settings(role_map=" sec-reviewers=REVIEWER, sec-leads=lead ,ops=Admin").role_map
    assert parsed == {"sec-reviewers": Role.REVIEWER, "sec-leads": Role.LEAD, "ops": Role.ADMIN}


@pytest.mark.parametrize("value", ["sec-reviewers", "sec-reviewers=SUPERUSER", "=REVIEWER", "a=REVIEWER,b"])
def test_role_map_refuses_what_it_cannot_map(value):
    with pytest.raises(ValidationError, match="HITL_ROLE_MAP entry"):
        settings(role_map=value)


@pytest.mark.parametrize(
    ("issuer", "ok"),
    [(ISSUER, True), ("http://127.0.0.1:8080", True), ("http://localhost:8080/realms/x", True),
     ("http://idp.example.com", False), ("ftp://idp.example.com", False), ("https://idp.example.com/?x=1", False), ("idp.example.com", False)],
)
def test_issuer_is_https_or_loopback_http(issuer, ok):
    if ok:
        assert settings(oidc_issuer=issuer, oidc_client_id="console").oidc_issuer == issuer
    else:
        with pytest.raises(ValidationError, match="HITL_OIDC_ISSUER must be"):
            settings(oidc_issuer=issuer, oidc_client_id="console")


def test_issuer_needs_a_client_id_and_excludes_a_jwks_source():
    with pytest.raises(ValidationError, match="HITL_OIDC_CLIENT_ID"):
        settings(oidc_issuer=ISSUER)
    with pytest.raises(ValidationError, match="leave HITL_JWKS_URL"):
        settings(oidc_issuer=ISSUER, oidc_client_id="console", jwks_url="https://idp.example.com/jwks")


def test_an_issuer_is_enough_to_serve_without_a_jwt_secret():
    assert settings(oidc_issuer=ISSUER, oidc_client_id="console").secret_problem() is None
    assert "HITL_OIDC_ISSUER" in settings().secret_problem()


def test_roles_from_a_dotted_claim_through_the_map():
    claims = {"realm_access": {"roles": ["sec-leads", "offline_access"]}, "groups": "sec-reviewers", "scp": "REVIEWER viewer"}
    mapping = {"sec-leads": Role.LEAD, "sec-reviewers": Role.REVIEWER}
    assert mapped_roles(claims, "realm_access.roles", mapping) == {Role.LEAD}
    assert mapped_roles(claims, "groups", mapping) == {Role.REVIEWER}  # one string is one value
    assert mapped_roles(claims, "scp", {}) == {Role.REVIEWER, Role.VIEWER}  # no map: role names, space-separated too
    assert mapped_roles(claims, "realm_access.missing", mapping) == frozenset()
    assert mapped_roles({"https://example.com/roles": ["sec-leads"]}, "https://example.com/roles", mapping) == {Role.LEAD}
    assert mapped_roles({"groups": {"not": "a list"}}, "groups", mapping) == frozenset()
