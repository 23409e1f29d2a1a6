"""The opt-in webhooks component (deploy/kustomize/components/webhooks) on the production overlay: one egress rule
for webhook targets added to the NetworkPolicy, the settings merged into the one ConfigMap, and the result still
valid (kubernetes-validate --strict) with no checkov finding."""

from __future__ import annotations

import json

import yaml

from tests.support.deploy import build_overlay, build_with_components, find, find_all, run, tool

PRIVATE = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"}


def _docs() -> list[dict]:
    return build_with_components("production", "webhooks")


def test_adds_one_https_egress_rule_without_private_ranges():
    before = find(build_overlay("production"), "NetworkPolicy")["spec"]["egress"]
    after = find(_docs(), "NetworkPolicy")["spec"]["egress"]
    assert after[:-1] == before
    rule = after[-1]
    assert rule["ports"] == [{"port": 443, "protocol": "TCP"}]
    [peer] = rule["to"]
    assert peer["ipBlock"]["cidr"] == "0.0.0.0/0" and PRIVATE <= set(peer["ipBlock"]["except"])


def test_settings_merge_into_the_one_config_map_and_are_read_by_the_app():
    from graphql_api.config import Settings

    docs = _docs()
    [config] = [doc for doc in find_all(docs, "ConfigMap") if doc["metadata"]["name"].startswith("hitl-patch-service-config")]
    data = config["data"]
    assert data["HITL_WEBHOOKS"] == "true" and data["HITL_WEBHOOK_TIMEOUT_SECONDS"] == "5"
    assert data["HITL_PUBLIC_URL"].startswith("https://")
    known = {("HITL_" + name).upper() for name in Settings.model_fields}
    assert {key for key in data if "WEBHOOK" in key or key == "HITL_PUBLIC_URL"} <= known
    deployment = find(docs, "Deployment")
    refs = [source["configMapRef"]["name"] for source in deployment["spec"]["template"]["spec"]["containers"][0].get("envFrom", [])]
    assert config["metadata"]["name"] in refs


def test_still_valid_and_checkov_clean(tmp_path):
    manifest = tmp_path / "production-webhooks.yaml"
    manifest.write_text(yaml.safe_dump_all(_docs(), sort_keys=False))
    proc = run([tool("kubernetes-validate"), "--strict", "-k", "1.37.0", str(manifest)], timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed for resource networkpolicy/hitl-patch-service" in proc.stdout + proc.stderr
    proc = run(
        [tool("checkov"), "--framework", "kubernetes", "--skip-download", "-o", "json", "-f", str(manifest)],
        timeout=600, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOG_LEVEL": "WARNING"},
    )
    report = json.loads(proc.stdout)
    if isinstance(report, list):
        (report,) = [r for r in report if r.get("check_type") == "kubernetes"]
    failed = report["results"]["failed_checks"]
    assert report["summary"]["failed"] == 0, [(c["check_id"], c["resource"]) for c in failed]
