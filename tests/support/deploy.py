"""Tests of the Kubernetes deployment, the container image and their tooling.

Shared helpers live here (the test modules import them). The external tools are installed by
``bash scripts/install-deploy-tools.sh`` into ``.cache/deploy-tools/``; a missing tool FAILS the
test that needs it with the command to run, it never skips.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE = DEPLOY / "kustomize"
OVERLAYS = ("staging", "production")
NAMESPACE = "maximus-immunity"
APP = "hitl-patch-service"
IMAGE = "vertice-dev/hitl-patch-service"
TOOLS_DIR = Path(os.environ.get("DEPLOY_TOOLS_DIR", ROOT / ".cache" / "deploy-tools"))
INSTALL_HINT = "run `bash scripts/install-deploy-tools.sh` first (installs into .cache/deploy-tools/)"

# Where each tool lives after scripts/install-deploy-tools.sh.
_TOOL_PATHS = {
    "kubernetes-validate": TOOLS_DIR / "kubernetes-validate" / "bin" / "kubernetes-validate",
    "checkov": TOOLS_DIR / "checkov" / "bin" / "checkov",
    "promtool": TOOLS_DIR / "debian" / "usr" / "bin" / "promtool",
    # The server of the same Debian package: tests/monitoring runs it against real `hitl serve` processes.
    "prometheus": TOOLS_DIR / "debian" / "usr" / "bin" / "prometheus",
    "shellcheck": TOOLS_DIR / "debian" / "usr" / "bin" / "shellcheck",
}

# Metric names the service exposes on /metrics (API.md + prometheus-fastapi-instrumentator).
CONTRACT_METRICS = frozenset(
    {
        "hitl_decisions_total",
        "hitl_decision_duration_seconds",
        "hitl_pending_patches",
        "hitl_ml_accuracy",
        "hitl_auto_approval_rate",
        "hitl_rejection_rate",
        "hitl_db_up",
        "hitl_active_subscriptions",
        "hitl_audit_head_seq",
        "hitl_auto_approval_guard_tripped",
        "hitl_ml_feature_drift",
        # issue 22: the database read's freshness, the longest wait, errors sent in GraphQL responses
        "hitl_db_last_success_timestamp_seconds",
        "hitl_oldest_pending_patch_age_seconds",
        "hitl_graphql_errors_total",
        # API.md "Webhooks" names the first two; the failing gauge is what HITLWebhookFailing watches.
        "hitl_webhook_deliveries_total",
        "hitl_webhook_lag_events",
        "hitl_webhook_endpoints_failing",
        "http_requests_total",
        "http_request_duration_seconds",
    }
)
# Series that Prometheus itself creates for every scrape target; never on the app's /metrics.
PROMETHEUS_SYNTHETIC_METRICS = frozenset({"up"})

SEED_ALERTS = {
    "HITLServiceDown": "critical",
    "HITLHighPendingPatches": "warning",
    "HITLDecisionLag": "warning",
    "HITLLowAutoApprovalRate": "info",
    "HITLMLAccuracyDrop": "warning",
    "HITLHighErrorRate": "warning",
    "HITLDatabaseConnectionFailed": "critical",
    "HITLAutoApprovalGuardTripped": "critical",
    "HITLModelFeatureDrift": "warning",
    "HITLGraphQLServerErrors": "warning",  # issue 22
    "HITLWebhookFailing": "warning",  # issue 18
}


def tool(name: str) -> str:
    """Path of an installed deployment tool; fails (never skips) when it is missing."""
    path = _TOOL_PATHS[name]
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{name} is not installed at {path}: {INSTALL_HINT}", pytrace=False)
    return str(path)


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not on PATH: `kubectl kustomize` builds the overlays", pytrace=False)
    return path


def uv_command() -> list[str]:
    """How to call uv here: $UV (set by `uv run`), `uv` on PATH, else `python -m uv` with the base
    interpreter (how scripts/_uv.sh installs it)."""
    import sys

    for candidate in (os.environ.get("UV"), shutil.which("uv")):
        if candidate and os.access(candidate, os.X_OK):
            return [candidate]
    for python in (shutil.which("python3"), os.path.join(sys.base_prefix, "bin", "python3")):
        try:
            if python and subprocess.run([python, "-m", "uv", "--version"], capture_output=True, timeout=60).returncode == 0:
                return [python, "-m", "uv"]
        except (OSError, subprocess.TimeoutExpired):
            continue
    pytest.fail("uv is not installed (no $UV, no `uv` on PATH, no `python3 -m uv`)", pytrace=False)


def run(cmd: list[str], *, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)


@functools.cache
def build_overlay_text(overlay: str) -> str:
    """`kubectl kustomize` output of an overlay (cached: kustomize is deterministic)."""
    proc = run([kubectl(), "kustomize", str(KUSTOMIZE / "overlays" / overlay)], timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize overlays/{overlay} failed:\n{proc.stderr}", pytrace=False)
    return proc.stdout


def build_overlay(overlay: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(build_overlay_text(overlay)) if doc]


def build_with_components(overlay: str, *components: str) -> list[dict]:
    """An overlay with opt-in components added, as an operator adds them."""
    return build_layer(overlay, yaml.safe_dump({"components": [f"../components/{name}" for name in components]}))


@functools.cache
def build_layer(on: str, layer: str) -> list[dict]:
    """A kustomization of its own on top of `on` (an overlay's name, or a path under deploy/kustomize such as
    "base"), with the fields `layer` (YAML: components, images, configMapGenerator, ...), as an operator's own
    overlay or deploy.sh's IMAGE_TAG would be. Kustomize takes only relative paths, so it is built beside the
    overlays."""
    import tempfile

    target = on if "/" in on or on == "base" else f"overlays/{on}"
    with tempfile.TemporaryDirectory(prefix=".test-overlay-", dir=KUSTOMIZE) as directory:
        (Path(directory) / "kustomization.yaml").write_text(
            yaml.safe_dump({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"../{target}"],
                **yaml.safe_load(layer),
            })
        )
        proc = run([kubectl(), "kustomize", directory], timeout=120)
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize {target} + {layer} failed:\n{proc.stderr}", pytrace=False)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def pod_spec(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def container_environment(container: dict, *, configmaps: dict[str, dict], secrets: dict[str, dict]) -> dict[str, str]:
    """The environment Kubernetes gives `container` (envFrom, then env), from ConfigMaps and Secrets by name."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment.update(configmaps[source["configMapRef"]["name"]])
        else:
            environment.update(secrets[source["secretRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            environment[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]
        if "secretKeyRef" in ref:
            environment[entry["name"]] = secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]]
        else:
            environment[entry["name"]] = configmaps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]
    return environment


def secret_refs(workload: dict) -> dict[str, set[tuple[str, str]]]:
    """container name -> {(Secret, key)} it reads (env secretKeyRef and envFrom secretRef as (Secret, "*"))."""
    spec = pod_spec(workload)
    refs: dict[str, set[tuple[str, str]]] = {}
    for container in spec.get("initContainers", []) + spec["containers"]:
        found = refs.setdefault(container["name"], set())
        for env in container.get("env", []):
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                found.add((ref["name"], ref["key"]))
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                found.add((source["secretRef"]["name"], "*"))
    return refs


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def find_all(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def prometheus_rule_spec(overlay: str = "production") -> dict:
    return find(build_overlay(overlay), "PrometheusRule")["spec"]


def dashboard(overlay: str = "production") -> dict:
    import json

    docs = build_overlay(overlay)
    cms = [d for d in find_all(docs, "ConfigMap") if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(cms) == 1, "expected exactly one Grafana dashboard ConfigMap"
    (content,) = cms[0]["data"].values()
    return json.loads(content)


# --------------------------------------------------------------------------- PromQL metric names

_PROMQL_WORDS = frozenset(
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
        "and", "or", "unless", "offset", "inf", "nan", "start", "end", "atan2",
    }
)


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (functions, keywords, labels excluded)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"`[^`]*`", "``", s)
    s = re.sub(r"\{[^{}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # range / subquery selectors (incl. $__rate_interval)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?[A-Za-z_][\w]*\}?", " ", s)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", s):
        word = m.group(1)
        if word.lower() not in _PROMQL_WORDS:
            names.add(word)
    return names


def grafana_query_metric_names(query: str) -> set[str]:
    """Metric names in a Grafana template-variable query (label_values(metric, label) etc.)."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_]\w*\s*\)\s*", query)
    if m:
        return promql_metric_names(m.group(1))
    m = re.fullmatch(r"\s*query_result\((.*)\)\s*", query)
    if m:
        return promql_metric_names(m.group(1))
    return set()  # label_values(label), metrics(regex): no metric named


def alert_expressions() -> dict[str, str]:
    """Rule name -> expression; an alert made of several rules (HITLDecisionLag) as "name[lag]" for each."""
    expressions = {}
    for group in prometheus_rule_spec()["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            if "lag" in rule.get("labels", {}):
                name = f"{name}[{rule['labels']['lag']}]"
            assert name not in expressions, f"two rules named {name}: tell them apart by a label"
            expressions[name] = rule["expr"]
    return expressions


def dashboard_queries() -> list[str]:
    board = dashboard()
    queries = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append(target["expr"])
            walk(panel.get("panels", []))

    walk(board["panels"])
    return queries


def used_metric_names() -> dict[str, set[str]]:
    """metric name -> where it is used ("alert X" / "dashboard")."""
    used: dict[str, set[str]] = {}
    for alert, expr in alert_expressions().items():
        for name in promql_metric_names(expr):
            used.setdefault(name, set()).add(f"alert {alert}")
    for expr in dashboard_queries():
        for name in promql_metric_names(expr):
            used.setdefault(name, set()).add("dashboard panel")
    for var in dashboard().get("templating", {}).get("list", []):
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if var.get("type") == "query" and q:
            for name in grafana_query_metric_names(q):
                used.setdefault(name, set()).add(f"dashboard variable {var['name']}")
    return used


def family_of(name: str) -> list[str]:
    """A sample name and the metric family it may belong to (histogram/summary suffixes)."""
    out = [name]
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            out.append(name[: -len(suffix)])
    return out


def exposed_metric_names(text: str) -> set[str]:
    """Names on a Prometheus text exposition: families from # TYPE/# HELP, and sample names."""
    names = set()
    for line in text.splitlines():
        if line.startswith(("# TYPE ", "# HELP ")):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


# --------------------------------------------------------------------------- running the app


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def clean_app_env(**overrides: str) -> dict[str, str]:
    """The environment minus any HITL_*/POSTGRES_*/DB_POOL_* setting of the caller, plus overrides."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HITL_", "POSTGRES_", "DB_POOL_")) and k.lower() not in ("http_proxy", "https_proxy")
    }
    env.update(overrides)
    return env


def start_app(hitl: str | Path, cwd: Path, env: dict[str, str], *, timeout: float = 90) -> tuple[subprocess.Popen, str, Path]:
    """`hitl db upgrade` then `hitl serve` on a free loopback port; waits for /ready == 200.

    Returns (process, base_url, log_path). The caller must stop the process (stop_app).
    """
    hitl = str(hitl)
    upgrade = run([hitl, "db", "upgrade"], cwd=cwd, env=env, timeout=180)
    if upgrade.returncode != 0:
        pytest.fail(
            f"`hitl db upgrade` failed (exit {upgrade.returncode}):\n{upgrade.stdout[-3000:]}\n{upgrade.stderr[-3000:]}",
            pytrace=False,
        )
    port = free_port()
    log_path = cwd / "hitl-serve.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed by stop_app
    proc = subprocess.Popen(
        [hitl, "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    proc._hitl_log = log  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_app(proc)
            pytest.fail(f"`hitl serve` exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}", pytrace=False)
        try:
            last = http_get(base + "/ready", timeout=2)
            if last[0] == 200:
                return proc, base, log_path
        except OSError as exc:
            last = (None, str(exc))
        time.sleep(0.3)
    stop_app(proc)
    pytest.fail(f"/ready did not answer 200 within {timeout}s (last: {last}):\n{log_path.read_text()[-4000:]}", pytrace=False)


def stop_app(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    log = getattr(proc, "_hitl_log", None)
    if log is not None:
        log.close()
