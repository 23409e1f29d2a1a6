"""Every metric named in an alert or a dashboard query is one the service exposes.

`test_used_metrics_are_exposed_by_the_running_app` starts the real app (`hitl db upgrade`, then
`hitl serve` on SQLite) and compares with its /metrics. `up` is exempt: Prometheus creates it.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest

from tests.support.deploy import (
    CONTRACT_METRICS,
    PROMETHEUS_SYNTHETIC_METRICS,
    ROOT,
    SEED_ALERTS,
    alert_expressions,
    clean_app_env,
    exposed_metric_names,
    family_of,
    grafana_query_metric_names,
    http_get,
    promql_metric_names,
    start_app,
    stop_app,
    used_metric_names,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('max by (namespace) (up{job="x"}) == 0 or absent(up{job="x"})', {"up"}),
        ('histogram_quantile(0.95, sum by (namespace, le) (rate(a_bucket{job="x", le=~".+"}[15m]))) > 300', {"a_bucket"}),
        ("sum(rate(a_sum[$__rate_interval])) / sum(rate(a_count[5m] offset 1h)) * 60", {"a_sum", "a_count"}),
        ('sum without (pod) (rate(http_requests_total{status=~"5.*"}[5m])) > bool 1e3', {"http_requests_total"}),
        ("a:b_rule and on (pod) group_left (x) c > 0.5", {"a:b_rule", "c"}),
    ],
)
def test_promql_parser(expr, names):
    assert promql_metric_names(expr) == names


def test_grafana_variable_parser():
    assert grafana_query_metric_names('label_values(hitl_db_up{job="x"}, namespace)') == {"hitl_db_up"}
    assert grafana_query_metric_names("label_values(namespace)") == set()


def test_alerts_and_dashboard_name_metrics():
    used = used_metric_names()
    alerts = alert_expressions()
    assert len(alerts) == len(SEED_ALERTS) + 1  # HITLDecisionLag is two rules
    for alert, expr in alerts.items():
        assert promql_metric_names(expr), f"{alert} names no metric"
    assert {"hitl_pending_patches", "hitl_decisions_total", "http_requests_total"} <= set(used)


def _unexposed(used: dict[str, set[str]], exposed: set[str]) -> dict[str, set[str]]:
    return {
        name: where
        for name, where in used.items()
        if name not in PROMETHEUS_SYNTHETIC_METRICS and not any(n in exposed for n in family_of(name))
    }


def test_used_metrics_are_in_the_service_contract():
    """Static check against the names API.md and the instrumentator promise."""
    missing = _unexposed(used_metric_names(), set(CONTRACT_METRICS))
    assert not missing, f"alerts/dashboard use metrics outside the contract: {missing}"


def _hitl_executable() -> Path:
    for candidate in (Path(sys.executable).parent / "hitl", ROOT / ".venv" / "bin" / "hitl"):
        if candidate.exists():
            return candidate
    pytest.fail("no `hitl` console script next to this Python or in .venv/bin: install the project (uv sync)")


def test_used_metrics_are_exposed_by_the_running_app(tmp_path):
    env = clean_app_env(
        HITL_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/t.db",
        HITL_JWT_SECRET=secrets.token_hex(32),  # 64 random characters
        HITL_AUDIT_CHECKPOINT_KEY=secrets.token_hex(32),
    )
    proc, base, _log = start_app(_hitl_executable(), tmp_path, env)
    try:
        status, text = http_get(base + "/metrics")
        assert status == 200, text[:2000]
    finally:
        stop_app(proc)
    exposed = exposed_metric_names(text)
    missing = _unexposed(used_metric_names(), exposed)
    assert not missing, (
        f"alerts/dashboard use metrics the app does not expose on /metrics: {missing}\n"
        f"exposed: {sorted(n for n in exposed if n.startswith(('hitl_', 'http_')))}"
    )
    # and the app exposes everything the contract promises
    assert not (CONTRACT_METRICS - exposed), f"app lacks contract metrics {CONTRACT_METRICS - exposed}"
