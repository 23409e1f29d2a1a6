"""components/sso: the egress the API pods need to reach the identity provider, and nothing more; the settings'
examples in the production overlay are settings the service reads."""

import re

import pytest
import yaml

from graphql_api.config import Settings
from tests.support.deploy import KUSTOMIZE, OVERLAYS, build_layer, build_overlay, build_with_components, find_all, run, tool

IDP_POLICY = "hitl-patch-service-idp"


def _policies(docs: list[dict]) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in find_all(docs, "NetworkPolicy")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_component_adds_egress_to_the_idp_for_the_api_pods_only(overlay):
    without, with_sso = _policies(build_overlay(overlay)), _policies(build_with_components(overlay, "sso"))
    assert IDP_POLICY not in without
    assert {name: doc for name, doc in with_sso.items() if name != IDP_POLICY} == without, "the default-deny policy is unchanged"
    policy = with_sso[IDP_POLICY]
    assert policy["metadata"]["namespace"] == "maximus-immunity"
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == {"app": "hitl-patch-service", "app.kubernetes.io/component": "api"}, "not the training pods"
    assert spec["policyTypes"] == ["Egress"] and "ingress" not in spec, "no ingress rule: it cannot open the pods"
    (rule,) = spec["egress"]
    assert rule["ports"] == [{"port": 443, "protocol": "TCP"}]
    (peer,) = rule["to"]
    assert set(peer["ipBlock"]["except"]) >= {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}, "the cluster's own ranges stay closed"


def test_the_component_validates_strictly(tmp_path):
    docs = build_with_components("production", "sso")
    manifest = tmp_path / "production-sso.yaml"
    manifest.write_text(yaml.safe_dump_all([doc for doc in docs if doc["kind"] == "NetworkPolicy"]))
    proc = run([tool("kubernetes-validate"), "--strict", "-k", "1.37.0", str(manifest)], timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"networkpolicy/{IDP_POLICY}" in proc.stdout + proc.stderr


@pytest.mark.parametrize("example", ["Keycloak", "Okta"])
def test_the_commented_examples_are_valid_settings(example):
    """Uncommented, each example of overlays/production builds and the service accepts its values."""
    text = (KUSTOMIZE / "overlays/production/kustomization.yaml").read_text()
    block = text.split(f"# {example} ", 1)[1].split("\n      # Okta" if example == "Keycloak" else "\n\npatches", 1)[0]
    literals = re.findall(r"# - (HITL_[A-Z_]+=.*)", block)
    assert {item.split("=", 1)[0] for item in literals} == {
        "HITL_OIDC_ISSUER", "HITL_OIDC_CLIENT_ID", "HITL_OIDC_SCOPES", "HITL_JWT_AUDIENCE", "HITL_ROLES_CLAIM", "HITL_ROLE_MAP"}
    layer = yaml.safe_dump({
        "components": ["../components/sso"],
        "configMapGenerator": [{"name": "hitl-patch-service-config", "behavior": "merge", "literals": literals}],
    })
    docs = build_layer("production", layer)
    (config,) = [doc for doc in find_all(docs, "ConfigMap") if doc["metadata"]["name"].startswith("hitl-patch-service-config-")]
    values = {key: config["data"][key] for key in (item.split("=", 1)[0] for item in literals)}
    settings = Settings(_env_file=None, **{key.removeprefix("HITL_").lower(): value for key, value in values.items()})
    assert settings.oidc_issuer.startswith("https://") and settings.role_map and settings.secret_problem() is None
