"""The PrometheusRule's groups pass `promtool check rules` and the unit tests in
deploy/monitoring/hitl-rules.test.yaml, where each alert fires in one case and not in another."""

from __future__ import annotations

import shutil

import yaml

from tests.support.deploy import DEPLOY, SEED_ALERTS, prometheus_rule_spec, run, tool

RULE_TESTS = DEPLOY / "monitoring" / "hitl-rules.test.yaml"


def _write_rules(tmp_path):
    # promtool rejects the PrometheusRule object itself: feed it the extracted .spec
    rules = tmp_path / "hitl-rules.yaml"
    rules.write_text(yaml.safe_dump(prometheus_rule_spec(), sort_keys=False))
    return rules


def test_alerts_are_exactly_the_seed_alerts():
    alerts = {r["alert"]: r["labels"]["severity"]
              for g in prometheus_rule_spec()["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == SEED_ALERTS


def test_promtool_check_rules(tmp_path):
    rules = _write_rules(tmp_path)
    proc = run([tool("promtool"), "check", "rules", str(rules)], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count = sum(len(group["rules"]) for group in prometheus_rule_spec()["groups"])
    assert f"SUCCESS: {count} rules found" in proc.stdout + proc.stderr


def test_promtool_test_rules(tmp_path):
    _write_rules(tmp_path)
    tests = tmp_path / RULE_TESTS.name
    shutil.copy(RULE_TESTS, tests)
    proc = run([tool("promtool"), "test", "rules", tests.name], cwd=tmp_path, timeout=120)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    spec = yaml.safe_load(RULE_TESTS.read_text())
    assert spec["rule_files"] == ["hitl-rules.yaml"]
    fires, quiet = set(), set()
    for case in spec["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires == set(SEED_ALERTS), f"no firing case for {set(SEED_ALERTS) - fires}"
    assert quiet == set(SEED_ALERTS), f"no quiet case for {set(SEED_ALERTS) - quiet}"
