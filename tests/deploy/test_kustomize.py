"""The kustomize overlays build, validate strictly, and keep what the deployment README promised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.support.deploy import (
    APP,
    IMAGE,
    KUSTOMIZE,
    NAMESPACE,
    OVERLAYS,
    build_layer,
    build_overlay,
    build_overlay_text,
    find,
    find_all,
    run,
    secret_refs,
    tool,
)

CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
EXPECTED_KINDS = {
    "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Service", "Deployment", "CronJob",
    "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy", "Ingress",
    "ServiceMonitor", "PrometheusRule", "Job",
}
# Every setting the service reads that is not a secret (API.md + deployment brief).
CONFIG_KEYS = {
    "HITL_HOST", "HITL_PORT", "HITL_DEV", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB",
    "DB_POOL_MIN_SIZE", "DB_POOL_MAX_SIZE", "HITL_AUTO_APPROVE_MIN_CONFIDENCE",
    "HITL_AUTO_APPROVE_TARGET_PRECISION", "HITL_REQUIRED_APPROVALS_CRITICAL",
    "HITL_SLA_SECONDS_CRITICAL", "HITL_SLA_SECONDS_HIGH", "HITL_SLA_SECONDS_MEDIUM", "HITL_SLA_SECONDS_LOW",
    "HITL_GRAPHQL_INTROSPECTION", "HITL_GRAPHIQL", "HITL_CONSOLE", "HITL_CORS_ORIGINS", "HITL_WS_ALLOWED_ORIGINS",
    "HITL_LOG_LEVEL", "HITL_LOG_FORMAT", "HITL_FORWARDED_ALLOW_IPS", "HITL_SHUTDOWN_GRACE_SECONDS",
    "HITL_AUDIT_CHECKPOINT_SECONDS",
}
SECRET_ENV = {
    "POSTGRES_USER": ("postgres-immunity-secret", "username"),
    "POSTGRES_PASSWORD": ("postgres-immunity-secret", "password"),
    "HITL_JWT_SECRET": ("hitl-api-keys", "jwt-secret"),
    "HITL_INTERNAL_API_KEY": ("hitl-api-keys", "internal-api-key"),
    "HITL_AUDIT_CHECKPOINT_KEY": ("hitl-api-keys", "audit-checkpoint-key"),
}
APP_SECRET, OWNER_SECRET, API_KEYS = "postgres-immunity-secret", "postgres-immunity-owner-secret", "hitl-api-keys"
# The closing note of issue 21: which Secret (and key) each workload's container reads.
SECRET_REFS = {
    ("Deployment", "hitl-service"): {
        (APP_SECRET, "username"), (APP_SECRET, "password"),
        (API_KEYS, "jwt-secret"), (API_KEYS, "internal-api-key"), (API_KEYS, "audit-checkpoint-key"),
    },
    ("CronJob", "ml-train"): {(APP_SECRET, "username"), (APP_SECRET, "password")},
    ("Job", "db-migrate"): {(OWNER_SECRET, "username"), (OWNER_SECRET, "password"), (APP_SECRET, "username"), (APP_SECRET, "password")},
}
HOSTS = {
    "staging": {"hitl-staging.maximus.ai"},
    "production": {"hitl.maximus.ai", "api.maximus.ai"},
}


def _config(docs: list[dict]) -> dict:
    cms = [d for d in find_all(docs, "ConfigMap") if d["metadata"]["name"].startswith("hitl-patch-service-config-")]
    assert len(cms) == 1, "expected one generated (hash-suffixed) hitl-patch-service-config ConfigMap"
    return cms[0]


def _pod_spec(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for unit, factor in units.items():
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)


# --------------------------------------------------------------------------- build + validate


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_with_every_resource(overlay):
    docs = build_overlay(overlay)
    kinds = {d["kind"] for d in docs}
    assert EXPECTED_KINDS <= kinds, f"missing kinds: {EXPECTED_KINDS - kinds}"
    for doc in docs:
        assert doc["metadata"].get("namespace") == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']} not in {NAMESPACE}"
        labels = doc["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/component"):
            assert labels.get(key), f"{doc['kind']}/{doc['metadata']['name']} lacks label {key}"
        assert labels.get("app") == APP


@pytest.mark.parametrize("k8s_version", ["1.37.0", "1.27.0"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_validate_strict(overlay, k8s_version, tmp_path):
    """Every built object validates against the Kubernetes schemas (newest, and the 1.27 floor)."""
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(build_overlay_text(overlay))
    proc = run([tool("kubernetes-validate"), "--strict", "-k", k8s_version, str(manifest)], timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"kubernetes-validate --strict failed:\n{output}"
    docs = build_overlay(overlay)
    passed = re.findall(r"passed for resource (\S+)", output)
    expected = sorted(f"{d['kind'].lower()}/{d['metadata']['name']}" for d in docs if d["kind"] not in CRD_KINDS)
    assert sorted(passed) == expected, output
    unknown = [line for line in output.splitlines() if "Couldn't find schema" in line]
    assert all(any(k in line for k in CRD_KINDS) for line in unknown), f"schemas missing for non-CRD kinds:\n{unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_servicemonitor_required_fields(overlay):
    docs = build_overlay(overlay)
    sm = find(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    spec = sm["spec"]
    assert isinstance(spec.get("selector"), dict) and spec["selector"].get("matchLabels"), "spec.selector is required"
    assert spec.get("endpoints"), "spec.endpoints must not be empty"
    svc = find(docs, "Service", APP)
    svc_labels = svc["metadata"]["labels"]
    assert all(svc_labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()), "selector must match the Service"
    assert NAMESPACE in spec.get("namespaceSelector", {}).get("matchNames", []), "namespaceSelector must name the namespace"
    port_names = {p["name"] for p in svc["spec"]["ports"]}
    for ep in spec["endpoints"]:
        assert set(ep) <= {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "honorLabels",
                           "relabelings", "metricRelabelings", "params", "tlsConfig", "bearerTokenSecret",
                           "authorization", "basicAuth", "followRedirects", "enableHttp2", "honorTimestamps",
                           "proxyUrl", "oauth2", "filterRunning", "trackTimestampsStaleness"}, f"unknown endpoint field: {ep}"
        assert ep.get("port") in port_names, f"endpoint port {ep.get('port')} is not a Service port name"
        assert ep.get("path", "/metrics") == "/metrics"
        for duration in ("interval", "scrapeTimeout"):
            if duration in ep:
                assert re.fullmatch(r"(\d+(ms|s|m|h))+", ep[duration]), f"bad {duration} {ep[duration]}"
    # job label = app.kubernetes.io/name of the Service = what the alerts select on
    assert svc_labels[spec["jobLabel"]] == APP


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheusrule_required_fields(overlay):
    rule = find(build_overlay(overlay), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups = rule["spec"]["groups"]
    assert groups and len({g["name"] for g in groups}) == len(groups), "groups need unique names"
    for group in groups:
        assert group["rules"], f"group {group['name']} has no rules"
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r), f"rule needs exactly one of alert/record: {r}"
            assert isinstance(r.get("expr"), str) and r["expr"].strip(), f"rule without expr: {r}"
            assert set(r) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}, r
            if "for" in r:
                assert re.fullmatch(r"(\d+(ms|s|m|h|d|w|y))+", r["for"]), r["for"]
            if "alert" in r:
                assert r["labels"]["severity"] in {"critical", "warning", "info"}
                for key in ("summary", "description", "runbook_url"):
                    assert r["annotations"].get(key), f"{r['alert']} lacks annotation {key}"
                assert r["annotations"]["runbook_url"].startswith("https://docs.maximus.ai/runbooks/hitl-")
    # The operator's ruleSelector/serviceMonitorSelector usually matches `release`.
    assert rule["metadata"]["labels"].get("release")


# --------------------------------------------------------------------------- what was promised


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment(overlay):
    docs = build_overlay(overlay)
    dep = find(docs, "Deployment", APP)
    spec = dep["spec"]
    # The HPA owns the replica count: re-applying must never reset it.
    assert "replicas" not in spec, "spec.replicas would fight the HPA on every apply"
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}, "no capacity dip"
    pod_labels = spec["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items())

    pod = _pod_spec(dep)
    assert pod["serviceAccountName"] == "maximus-immunity-sa"
    assert pod["automountServiceAccountToken"] is False
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] >= 10000
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    spread = pod["topologySpreadConstraints"]
    assert any(c["topologyKey"] == "kubernetes.io/hostname" for c in spread), "pods must spread across nodes"
    assert {v["name"]: v for v in pod["volumes"]}["tmp"]["emptyDir"] is not None

    (container,) = pod["containers"]
    assert container["name"] == "hitl-service", "the README's `kubectl set image ... hitl-service=` needs this name"
    image, _, tag = container["image"].partition(":")
    assert image == IMAGE and tag and tag != "latest", f"image must be pinned by tag: {container['image']}"
    assert container["command"] + container.get("args", []) == ["hitl", "serve", "--host", "0.0.0.0", "--port", "8027"]
    assert container["ports"] == [{"name": "http", "containerPort": 8027, "protocol": "TCP"}]
    res = container["resources"]
    assert res["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert res["limits"] == {"cpu": "500m", "memory": "512Mi"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"

    # Graceful shutdown: preStop pause + the app's WebSocket grace must fit in the grace period.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    config_cm = _config(docs)
    config = config_cm["data"]
    needed = int(pre_stop[1]) + int(config["HITL_SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > needed, "grace period too short for preStop + WebSocket drain"

    assert "initContainers" not in pod, "migrations run in the Job (components/migrations), never in the app's pods"
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], f"{c['name']} needs the /tmp emptyDir"
        assert c["envFrom"] == [{"configMapRef": {"name": config_cm["metadata"]["name"]}}]
        env = {e["name"]: e for e in c["env"]}
        for var, (secret, key) in SECRET_ENV.items():
            assert env[var]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}, var
        assert not any("value" in e and e["name"] in SECRET_ENV for e in c["env"]), "no literal secret values"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_references_per_workload(overlay):
    """The service and its training job connect as the restricted role; only the migration Job holds the owner's
    credentials (and the application role's, to create it)."""
    docs = build_overlay(overlay)
    rendered = {
        (workload["kind"], container): refs
        for kind in ("Deployment", "CronJob", "Job")
        for workload in find_all(docs, kind)
        for container, refs in secret_refs(workload).items()
    }
    assert rendered == SECRET_REFS
    job = find(docs, "Job")
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in _pod_spec(job)["containers"][0]["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert env == {
        "POSTGRES_USER": {"name": OWNER_SECRET, "key": "username"}, "POSTGRES_PASSWORD": {"name": OWNER_SECRET, "key": "password"},
        "HITL_APP_ROLE": {"name": APP_SECRET, "key": "username"}, "HITL_APP_ROLE_PASSWORD": {"name": APP_SECRET, "key": "password"},
    }, "the Job connects as the owner and creates/grants the role the service connects as"
    assert OWNER_SECRET not in find(docs, "Role")["rules"][1]["resourceNames"], "the pods' ServiceAccount may not read the owner's Secret"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migration_job(overlay):
    docs = build_overlay(overlay)
    job = find(docs, "Job")
    deployment = find(docs, "Deployment", APP)
    pod = _pod_spec(job)
    (container,) = pod["containers"]
    assert container["command"] == ["hitl", "db", "upgrade", "--grant-app-role"]
    assert container["image"] == deployment["spec"]["template"]["spec"]["containers"][0]["image"], "migrates with the release it serves"
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0
    assert pod["automountServiceAccountToken"] is False and pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert job["spec"]["template"]["metadata"]["labels"]["app"] == APP, "under the NetworkPolicy that lets it reach PostgreSQL"
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "db-migrate", "never behind the Service"
    # Named after the ConfigMap that holds what its template depends on; reads the database the service serves.
    (carrier,) = [cm for cm in find_all(docs, "ConfigMap") if cm["metadata"]["name"] == job["metadata"]["name"]]
    assert carrier["data"]["image"] == container["image"]
    config = _config(docs)["data"]
    refs = {e["name"]: e["valueFrom"]["configMapKeyRef"] for e in container["env"] if "configMapKeyRef" in e.get("valueFrom", {})}
    for key in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB"):
        assert refs[key] == {"name": carrier["metadata"]["name"], "key": key}
        assert carrier["data"][key] == config[key], f"the Job migrates another {key} than the service uses"


def _job_name(docs: list[dict]) -> str:
    return find(docs, "Job")["metadata"]["name"]


def test_migration_job_is_renamed_exactly_when_its_template_would_change():
    """A Job's pod template is immutable: a new image or database gives a new Job (which `kubectl apply -k`
    creates), anything else leaves the Job as it is (so re-applying changes nothing)."""
    base = _job_name(build_overlay("production"))
    assert base.startswith("hitl-patch-service-db-migrate-")
    new_tag = build_layer("production", "images: [{name: vertice-dev/hitl-patch-service, newTag: 9.9.9}]")
    assert _job_name(new_tag) != base
    assert {c["image"] for c in _pod_spec(find(new_tag, "Job"))["containers"]} == {f"{IMAGE}:9.9.9"}
    # An overlay of one's own that moves the database (edited where components/migrations is listed, as
    # deploy/README.md says; deploy.sh refuses manifests whose Job and service disagree).
    own = "components: [../components/migrations]\nimages: [{name: vertice-dev/hitl-patch-service, newTag: 0.1.0}]\n"
    stays, moved = (build_layer("base", own + f"""
configMapGenerator:
  - {{name: hitl-patch-service-config, behavior: merge, literals: [POSTGRES_HOST={host}]}}
""") for host in ("postgres-immunity-service", "pg.other.svc"))
    assert _job_name(stays) != _job_name(moved)
    carrier = [cm for cm in find_all(moved, "ConfigMap") if cm["metadata"]["name"] == _job_name(moved)][0]
    assert carrier["data"]["POSTGRES_HOST"] == "pg.other.svc", "the overlay's database reaches the Job"
    louder = build_layer("production", """
configMapGenerator:
  - {name: hitl-patch-service-config, behavior: merge, literals: [HITL_LOG_LEVEL=DEBUG]}
""")
    assert _job_name(louder) == base
    assert find(louder, "Job") == find(build_overlay("production"), "Job"), "the same Job, unchanged"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_hpa_pdb(overlay):
    docs = build_overlay(overlay)
    dep = find(docs, "Deployment", APP)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = find(docs, "Service", APP)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["sessionAffinity"] == "ClientIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8027, "targetPort": "http", "protocol": "TCP"}]
    selector = svc["spec"]["selector"]
    assert all(pod_labels.get(k) == v for k, v in selector.items()), "Service must select the API pods"
    cron = find(docs, "CronJob")
    cron_labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert not all(cron_labels.get(k) == v for k, v in selector.items()), "Service must not route to training pods"

    hpa = find(docs, "HorizontalPodAutoscaler", APP)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP}
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] == {"staging": 3, "production": 5}[overlay]
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 70, "memory": 80}

    pdb = find(docs, "PodDisruptionBudget", APP)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy(overlay):
    np_ = find(build_overlay(overlay), "NetworkPolicy")
    spec = np_["spec"]
    assert spec["podSelector"]["matchLabels"] == {"app": APP}, "covers API and training pods"
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    sources = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in spec["ingress"] for peer in rule["from"]
    }
    assert {"maximus-frontend", "monitoring"} <= sources
    assert sources - {"maximus-frontend", "monitoring"} <= {"ingress-nginx"}, "only the ingress controller besides"
    assert all(rule["ports"] == [{"port": 8027, "protocol": "TCP"}] for rule in spec["ingress"])

    egress = spec["egress"]
    peers = [(peer, rule.get("ports")) for rule in egress for peer in rule["to"]]
    pod_targets = {p["podSelector"]["matchLabels"].get("app") for p, _ in peers if "namespaceSelector" not in p}
    assert pod_targets == {"postgres-immunity", "wargaming-crisol"}
    dns = [ports for p, ports in peers if p.get("podSelector", {}).get("matchLabels", {}).get("k8s-app") == "kube-dns"]
    assert dns and {(x["port"], x["protocol"]) for x in dns[0]} == {(53, "UDP"), (53, "TCP")}
    pg = [ports for p, ports in peers if p.get("podSelector", {}).get("matchLabels", {}).get("app") == "postgres-immunity"]
    assert pg == [[{"port": 5432, "protocol": "TCP"}]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress(overlay):
    ing = find(build_overlay(overlay), "Ingress")
    ann = ing["metadata"]["annotations"]
    assert ann["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert ann["nginx.ingress.kubernetes.io/limit-rps"] == "100"
    assert ann["nginx.ingress.kubernetes.io/limit-connections"] == "50"
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600, "WebSockets need long timeouts"
    assert int(ann["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert not any("snippet" in key for key in ann), "no configuration snippets"
    (tls,) = ing["spec"]["tls"]
    assert tls["secretName"] == "maximus-tls-secret"
    hosts = {r["host"] for r in ing["spec"]["rules"]}
    assert hosts == HOSTS[overlay] == set(tls["hosts"])
    for rule in ing["spec"]["rules"]:
        paths = {p["path"] for p in rule["http"]["paths"]}
        for p in rule["http"]["paths"]:
            assert p["backend"]["service"] == {"name": APP, "port": {"name": "http"}}
        assert "/metrics" not in paths and "/" not in paths, "metrics stay cluster-internal"
        if rule["host"] == "api.maximus.ai":
            assert paths == {"/hitl"}
        else:
            assert {"/graphql", "/hitl", "/health", "/console"} <= paths


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_and_no_committed_secrets(overlay):
    docs = build_overlay(overlay)
    data = _config(docs)["data"]
    assert CONFIG_KEYS <= set(data), f"ConfigMap lacks {CONFIG_KEYS - set(data)}"
    assert data["DB_POOL_MIN_SIZE"] == "2" and data["DB_POOL_MAX_SIZE"] == "10"
    assert data["POSTGRES_HOST"] == "postgres-immunity-service" and data["POSTGRES_PORT"] == "5432"
    assert data["POSTGRES_DB"] == "adaptive_immunity"
    assert data["HITL_PORT"] == "8027" and data["HITL_DEV"] == "false"
    assert data["HITL_SLA_SECONDS_CRITICAL"] == "300" and data["HITL_SLA_SECONDS_LOW"] == "0"
    assert not any(k in data for k in SECRET_ENV) and "HITL_DATABASE_URL" not in data
    if overlay == "production":
        assert data["HITL_GRAPHIQL"] == "false" and data["HITL_GRAPHQL_INTROSPECTION"] == "false"
        assert data["HITL_LOG_LEVEL"] == "INFO"
    else:
        assert data["HITL_GRAPHIQL"] == "true" and data["HITL_GRAPHQL_INTROSPECTION"] == "true"
        assert data["HITL_LOG_LEVEL"] == "DEBUG"
    for origin in data["HITL_CORS_ORIGINS"].split(","):
        assert origin.startswith("https://") and origin.removeprefix("https://") in HOSTS[overlay]
    # No Secret object is rendered: operators create them (deploy.sh refuses placeholders).
    assert find_all(docs, "Secret") == []


def test_configmap_keys_are_settings_the_app_reads():
    """Every ConfigMap key (and every env var set on a container) is a setting the service reads."""
    try:
        from graphql_api.config import Settings
    except ImportError as exc:  # the settings class is the app's, see DESIGN.md item 6
        pytest.fail(f"cannot import graphql_api.config.Settings: {exc}")
    prefix = Settings.model_config.get("env_prefix", "")
    known = set()
    for name, info in Settings.model_fields.items():
        known.add((prefix + name).upper())
        alias = info.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            if isinstance(choice, str):
                known.add(choice.upper())
    for overlay in OVERLAYS:
        docs = build_overlay(overlay)
        unknown = set(_config(docs)["data"]) - known
        assert not unknown, f"{overlay} ConfigMap sets keys the app does not read: {unknown}"
        for workload in (find(docs, "Deployment"), find(docs, "CronJob"), find(docs, "Job")):
            pod = _pod_spec(workload)
            for c in pod.get("initContainers", []) + pod["containers"]:
                names = {e["name"] for e in c.get("env", [])} - {"HOME"}
                assert names <= known, f"{c['name']} sets unknown settings {names - known}"


def test_overlays_differ_where_promised():
    staging, production = (build_overlay(o) for o in OVERLAYS)
    def image(docs):
        return find(docs, "Deployment", APP)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image(staging) != image(production)
    assert find(staging, "HorizontalPodAutoscaler")["spec"] != find(production, "HorizontalPodAutoscaler")["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rbac_is_read_only(overlay):
    docs = build_overlay(overlay)
    role = find(docs, "Role")
    for rule in role["rules"]:
        assert rule["verbs"] == ["get"]
        assert rule["resources"] in (["configmaps"], ["secrets"])
        assert rule["resourceNames"], "limited to named objects"
    config_name = _config(docs)["metadata"]["name"]
    assert config_name in role["rules"][0]["resourceNames"], "Role must follow the hash-suffixed ConfigMap"
    rb = find(docs, "RoleBinding")
    assert rb["roleRef"]["name"] == role["metadata"]["name"]
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "maximus-immunity-sa", "namespace": NAMESPACE}]
    assert find(docs, "ServiceAccount")["metadata"]["name"] == "maximus-immunity-sa"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_retraining_cronjob(overlay):
    docs = build_overlay(overlay)
    cron = find(docs, "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = _pod_spec(cron)
    (c,) = pod["containers"]
    assert c["command"] == ["hitl", "ml", "train"]
    assert c["image"] == find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["restartPolicy"] == "Never"
    assert _quantity(c["resources"]["limits"]["memory"]) >= _quantity("512Mi")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grafana_dashboard_configmap(overlay):
    from tests.support.deploy import dashboard

    docs = build_overlay(overlay)
    cm = [d for d in find_all(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(cm) == 1 and cm[0]["metadata"]["name"] == "hitl-patch-service-dashboard", "fixed name, no hash"
    board = dashboard(overlay)
    assert board["uid"] == "hitl-service", "the README links /d/hitl-service"
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []))
            walk(p.get("panels", []))

    walk(board["panels"])
    text = "\n".join(exprs)
    for metric in ("hitl_pending_patches", "hitl_decisions_total", "hitl_decision_duration_seconds_bucket",
                   "hitl_ml_accuracy", "hitl_auto_approval_rate", "hitl_active_subscriptions", "http_requests_total"):
        assert metric in text, f"no dashboard panel uses {metric}"
    assert re.search(r'http_requests_total\{[^}]*status=~"5', text), "a panel must show HTTP errors"


# --------------------------------------------------------------------------- kustomize style


def _kustomizations() -> list[Path]:
    return sorted(KUSTOMIZE.rglob("kustomization.yaml"))


def test_kustomize_style():
    """Current fields only; base has no environment values; components are Components."""
    deprecated = {"commonLabels", "patchesStrategicMerge", "patchesJson6902", "bases", "vars"}
    files = _kustomizations()
    assert {f.parent.relative_to(KUSTOMIZE).as_posix() for f in files} >= {
        "base", "overlays/staging", "overlays/production", "components/monitoring", "components/migrations",
        "components/external-secrets"}
    for f in files:
        doc = yaml.safe_load(f.read_text())
        assert not (deprecated & set(doc)), f"{f}: deprecated fields {deprecated & set(doc)}"
        if f.parent.parent.name == "components":
            assert doc["kind"] == "Component"
    def strings(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node

    base_docs = [d for p in (KUSTOMIZE / "base").glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d]
    assert not [s for d in base_docs for s in strings(d) if "maximus.ai" in s], "hosts belong to the overlays"
    base = yaml.safe_load((KUSTOMIZE / "base" / "kustomization.yaml").read_text())
    assert all(not g.get("options", {}).get("disableNameSuffixHash") for g in base["configMapGenerator"]), \
        "the config ConfigMap must be hash-suffixed so a change rolls the pods"
