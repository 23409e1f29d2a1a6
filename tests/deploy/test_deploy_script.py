"""deploy/deploy.sh and scripts/install-deploy-tools.sh: syntax, ShellCheck, and deploy.sh's
behaviour against a fake kubectl (no cluster needed): it refuses missing or placeholder Secrets,
applies exactly the built overlay, waits for the rollout and prints verify/rollback commands."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.support.deploy import APP, DEPLOY, IMAGE, NAMESPACE, ROOT, build_overlay_text, kubectl, run, tool

SCRIPTS = [DEPLOY / "deploy.sh", ROOT / "scripts" / "install-deploy-tools.sh"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
    proc = run(["bash", "-n", str(script)])
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script):
    proc = run([tool("shellcheck"), "--severity=style", str(script)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_executable(script):
    assert script.stat().st_mode & stat.S_IXUSR, f"{script} must be executable"


# --------------------------------------------------------------------------- fake kubectl

FAKE_KUBECTL = textwrap.dedent(
    r'''
    #!/usr/bin/env python3
    """Fake kubectl for deploy.sh tests: state in $FAKE_KUBE_STATE, calls appended to calls.jsonl."""
    import base64, json, os, shutil, subprocess, sys
    from pathlib import Path

    state_dir = Path(os.environ["FAKE_KUBE_STATE"])
    state = json.loads((state_dir / "state.json").read_text())
    args = sys.argv[1:]
    with open(state_dir / "calls.jsonl", "a") as f:
        f.write(json.dumps(args) + "\n")

    def out(text=""):
        sys.stdout.write(text)
        sys.exit(0)

    def fail(msg, code=1):
        sys.stderr.write(msg + "\n")
        sys.exit(code)

    if args[:1] == ["version"]:
        if "--client" not in args and not state.get("server_up", True):
            fail("The connection to the server was refused")
        out("Client Version: fake\n")
    if args[:2] == ["config", "current-context"]:
        out(state["context"] + "\n") if state.get("context") else fail("current-context is not set")
    if args[:1] == ["kustomize"]:
        os.execv(os.environ["REAL_KUBECTL"], [os.environ["REAL_KUBECTL"]] + args)
    if args[:2] == ["get", "namespace"]:
        out("ns\n") if state.get("namespace_exists") else fail("NotFound")
    if args[:2] == ["create", "namespace"]:
        state["namespace_exists"] = True
        (state_dir / "state.json").write_text(json.dumps(state))
        out("namespace/%s created\n" % args[2])
    if args[:2] == ["get", "secret"]:
        name = args[2]
        assert args[args.index("-n") + 1] == "maximus-immunity", args
        jsonpath = args[args.index("-o") + 1]
        key = jsonpath.removeprefix("jsonpath={.data.").removesuffix("}")
        secret = state["secrets"].get(name)
        if secret is None:
            fail('Error from server (NotFound): secrets "%s" not found' % name)
        value = secret.get(key)
        out("" if value is None else base64.b64encode(value.encode()).decode())
    if args[:2] == ["get", "crd"]:
        wanted = "eso_crds" if "externalsecrets.external-secrets.io" in args else "crds"
        out("crds\n") if state.get(wanted, True) else fail("NotFound")
    if args[:1] == ["apply"]:
        src = args[args.index("-f") + 1]
        if "-l" in args:
            assert args[args.index("-l") + 1] == "app.kubernetes.io/component=secrets", args
            name = "applied-secrets.yaml"
        else:
            name = "applied-dry-run.yaml" if "--dry-run=server" in args else "applied.yaml"
        shutil.copy(src, state_dir / name)
        if name == "applied.yaml":  # the migration Job starts; it ends as the test says
            import re
            for job in re.findall(r"^  name: (hitl-patch-service-db-migrate-[a-z0-9]+)$", open(src).read(), re.M):
                state.setdefault("jobs", {}).setdefault(job, state.get("migration", "Complete"))
            (state_dir / "state.json").write_text(json.dumps(state))
        out("applied\n")
    if args[:2] == ["get", "job"]:
        assert "jsonpath={range .status.conditions[*]}{.type}={.status}{\" \"}{end}" in args, args
        outcome = state.get("jobs", {}).get(args[2])
        if outcome is None:
            fail('Error from server (NotFound): jobs.batch "%s" not found' % args[2])
        out("" if outcome == "Running" else outcome + "=True ")
    if args[:2] == ["delete", "job"]:
        del state["jobs"][args[2]]
        (state_dir / "state.json").write_text(json.dumps(state))
        out("job.batch deleted\n")
    if args[:1] == ["wait"]:
        assert "externalsecret" in args and "--for=condition=Ready" in args, args
        out("condition met\n") if state.get("eso_ready", True) else fail("timed out waiting for the condition")
    if args[:2] == ["rollout", "status"]:
        out("deployment successfully rolled out\n") if state.get("rollout_ok", True) else fail("timed out")
    fail("fake kubectl: unexpected arguments %r" % (args,), 99)
    '''
).lstrip()

GOOD_SECRETS = {
    "postgres-immunity-secret": {"username": "hitl_app", "password": secrets.token_urlsafe(32)},
    "postgres-immunity-owner-secret": {"username": "maximus", "password": secrets.token_urlsafe(32)},
    "hitl-api-keys": {
        "jwt-secret": secrets.token_urlsafe(64), "internal-api-key": secrets.token_urlsafe(32),
        "audit-checkpoint-key": secrets.token_urlsafe(48),
    },
}
APP_DB, OWNER_DB, API_KEYS = "postgres-immunity-secret", "postgres-immunity-owner-secret", "hitl-api-keys"


class FakeCluster:
    def __init__(self, tmp_path: Path, *, deploy_dir: Path = DEPLOY, **state):
        self.deploy_dir = deploy_dir
        self.dir = tmp_path / "kube"
        self.dir.mkdir()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        fake = bin_dir / "kubectl"
        fake.write_text(FAKE_KUBECTL)
        fake.chmod(0o755)
        self.state = {"context": "test-cluster", "namespace_exists": False, "secrets": GOOD_SECRETS, **state}
        (self.dir / "state.json").write_text(json.dumps(self.state))
        self.env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "FAKE_KUBE_STATE": str(self.dir),
            "REAL_KUBECTL": kubectl(),
        }

    def deploy(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(self.deploy_dir / "deploy.sh"), *args], capture_output=True, text=True, timeout=120,
            env={**self.env, **env}, stdin=subprocess.DEVNULL,
        )

    @property
    def calls(self) -> list[list[str]]:
        path = self.dir / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    @property
    def applied(self) -> str | None:
        path = self.dir / "applied.yaml"
        return path.read_text() if path.exists() else None


def _no_secret_leaked(proc, values):
    for value in values:
        assert value not in proc.stdout + proc.stderr, "deploy.sh printed a secret value"
        assert base64.b64encode(value.encode()).decode() not in proc.stdout + proc.stderr


def test_usage_on_bad_arguments(tmp_path):
    cluster = FakeCluster(tmp_path)
    for args in ([], ["qa"], ["staging", "production"]):
        proc = cluster.deploy(*args)
        assert proc.returncode == 2, args
        assert "staging|production" in proc.stderr
    assert cluster.calls == []


def test_staging_deploy_applies_the_overlay_and_waits(tmp_path):
    cluster = FakeCluster(tmp_path)
    proc = cluster.deploy("staging")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.applied == build_overlay_text("staging"), "must apply exactly the built overlay"
    assert ["create", "namespace", NAMESPACE] in cluster.calls
    assert ["rollout", "status", f"deployment/{APP}", "-n", NAMESPACE, "--timeout=10m"] in cluster.calls
    apply_at = next(i for i, c in enumerate(cluster.calls) if c[0] == "apply")
    assert all(c[:2] != ["get", "secret"] for c in cluster.calls[apply_at:]), "secrets are checked before applying"
    checked = {(c[2], c[c.index("-o") + 1]) for c in cluster.calls if c[:2] == ["get", "secret"]}
    assert {secret for secret, _ in checked} == {APP_DB, OWNER_DB, API_KEYS}
    assert (API_KEYS, "jsonpath={.data.audit-checkpoint-key}") in checked
    # The migration Job of this release is waited for after the apply and before the rollout.
    job = _migration_job("staging")
    job_waits = [i for i, c in enumerate(cluster.calls) if c[:3] == ["get", "job", job]]
    rollout_at = next(i for i, c in enumerate(cluster.calls) if c[0] == "rollout")
    assert job_waits and apply_at < job_waits[-1] < rollout_at, cluster.calls
    assert not any(c[:2] == ["delete", "job"] for c in cluster.calls), "nothing to retry"
    assert "migrations done" in proc.stdout
    assert f"kubectl rollout undo deployment/{APP} -n {NAMESPACE}" in proc.stdout
    assert "curl -fsS http://localhost:8027/ready" in proc.stdout
    assert "test-cluster" in proc.stdout
    _no_secret_leaked(proc, [v for s in GOOD_SECRETS.values() for v in s.values() if len(v) > 10])


@pytest.mark.parametrize(
    ("secrets_state", "message"),
    [
        ({}, "Secret postgres-immunity-secret is missing"),
        ({"postgres-immunity-secret": GOOD_SECRETS["postgres-immunity-secret"]}, "Secret hitl-api-keys is missing"),
        ({**GOOD_SECRETS, "hitl-api-keys": {**GOOD_SECRETS["hitl-api-keys"], "jwt-secret": "CHANGE_ME_" + "x" * 40}},
         "'jwt-secret' holds a placeholder"),
        ({**GOOD_SECRETS, "postgres-immunity-secret": {"username": "maximus", "password": "short"}},
         "'password' is shorter than 16"),
        ({**GOOD_SECRETS, "hitl-api-keys": {k: v for k, v in GOOD_SECRETS["hitl-api-keys"].items() if k != "internal-api-key"}},
         "no key 'internal-api-key'"),
        ({**GOOD_SECRETS, "postgres-immunity-secret": {"username": "maximus", "password": "password"}},
         "placeholder"),
        ({**GOOD_SECRETS, "postgres-immunity-secret": {"username": "<username>", "password": secrets.token_hex(16)}},
         "'username' holds a placeholder"),
        ({**GOOD_SECRETS, "hitl-api-keys": {**GOOD_SECRETS["hitl-api-keys"], "jwt-secret": "REPLACE-with-openssl-rand-base64-64-output-please"}},
         "'jwt-secret' holds a placeholder"),
        ({key: value for key, value in GOOD_SECRETS.items() if key != OWNER_DB}, f"Secret {OWNER_DB} is missing"),
        ({**GOOD_SECRETS, OWNER_DB: {**GOOD_SECRETS[OWNER_DB], "username": "hitl_app"}}, "name the same database user"),
        ({**GOOD_SECRETS, OWNER_DB: {**GOOD_SECRETS[OWNER_DB], "password": "short"}}, "'password' is shorter than 16"),
        ({**GOOD_SECRETS, API_KEYS: {k: v for k, v in GOOD_SECRETS[API_KEYS].items() if k != "audit-checkpoint-key"}},
         "no key 'audit-checkpoint-key'"),
        ({**GOOD_SECRETS, API_KEYS: {**GOOD_SECRETS[API_KEYS], "audit-checkpoint-key": secrets.token_hex(10)}}, "'audit-checkpoint-key' is shorter than 32"),
    ],
    ids=["none", "api-keys-missing", "placeholder-jwt", "short-password", "missing-key", "password-is-password",
         "placeholder-username", "replace-me-jwt", "owner-missing", "owner-is-the-app", "owner-password-short",
         "checkpoint-key-missing", "checkpoint-key-short"],
)
def test_refuses_missing_or_placeholder_secrets(tmp_path, secrets_state, message):
    cluster = FakeCluster(tmp_path, secrets=secrets_state)
    proc = cluster.deploy("staging")
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "refusing to deploy" in proc.stderr
    assert "openssl rand" in proc.stderr and OWNER_DB in proc.stderr, "must show how to create the secrets"
    assert cluster.applied is None and not any(c[0] == "apply" for c in cluster.calls)
    _no_secret_leaked(proc, ["CHANGE_ME_" + "x" * 40, *(v for s in GOOD_SECRETS.values() for v in s.values() if len(v) > 10)])


def test_production_needs_confirmation_without_a_terminal(tmp_path):
    cluster = FakeCluster(tmp_path)
    proc = cluster.deploy("production")
    assert proc.returncode != 0 and "--yes" in proc.stderr
    assert cluster.applied is None
    proc = cluster.deploy("production", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.applied == build_overlay_text("production")


def test_wrong_or_missing_context_refused(tmp_path):
    cluster = FakeCluster(tmp_path)
    proc = cluster.deploy("staging", KUBE_CONTEXT="prod-cluster")
    assert proc.returncode != 0 and "KUBE_CONTEXT" in proc.stderr
    assert cluster.applied is None
    other = tmp_path / "no-context"
    other.mkdir()
    cluster2 = FakeCluster(other, context="")
    proc = cluster2.deploy("staging")
    assert proc.returncode != 0 and "context" in proc.stderr
    assert cluster2.applied is None


def test_unreachable_cluster_refused(tmp_path):
    cluster = FakeCluster(tmp_path, server_up=False)
    proc = cluster.deploy("staging")
    assert proc.returncode != 0 and "cannot reach the API server" in proc.stderr
    assert cluster.applied is None


def test_missing_monitoring_crds_refused(tmp_path):
    cluster = FakeCluster(tmp_path, crds=False)
    proc = cluster.deploy("staging")
    assert proc.returncode != 0 and "CRDs" in proc.stderr
    assert cluster.applied is None


def test_image_tag_override(tmp_path):
    cluster = FakeCluster(tmp_path)
    proc = cluster.deploy("staging", IMAGE_TAG="1.2.3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    images = {line.split("image:")[1].strip() for line in cluster.applied.splitlines() if "image:" in line}
    assert images == {f"{IMAGE}:1.2.3"}
    assert not list((DEPLOY / "kustomize").glob(".image-tag.*")), "temporary kustomization left behind"
    for bad in ("latest", "1.2.3;rm -rf /", "-x"):
        proc = cluster.deploy("staging", IMAGE_TAG=bad)
        assert proc.returncode != 0, bad


def test_dry_run_changes_nothing(tmp_path):
    cluster = FakeCluster(tmp_path, namespace_exists=False)
    proc = cluster.deploy("staging", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.applied is None and (cluster.dir / "applied-dry-run.yaml").exists()
    assert not any(c[:2] == ["create", "namespace"] for c in cluster.calls)
    assert not any(c[0] == "rollout" for c in cluster.calls)


def test_failed_rollout_prints_rollback(tmp_path):
    cluster = FakeCluster(tmp_path, rollout_ok=False)
    proc = cluster.deploy("staging")
    assert proc.returncode != 0
    assert f"kubectl rollout undo deployment/{APP} -n {NAMESPACE}" in proc.stderr
    assert f"kubectl logs -n {NAMESPACE} job/{_migration_job('staging')}" in proc.stderr


def _migration_job(overlay: str) -> str:
    (job,) = [d["metadata"]["name"] for d in yaml.safe_load_all(build_overlay_text(overlay)) if d and d["kind"] == "Job"]
    return job


@pytest.mark.parametrize("outcome", ["Failed", "Running"])
def test_a_migration_that_fails_or_hangs_stops_before_the_rollout(tmp_path, outcome):
    cluster = FakeCluster(tmp_path, migration=outcome)
    proc = cluster.deploy("staging", MIGRATION_TIMEOUT="2", MIGRATION_POLL="1")
    assert proc.returncode != 0
    assert f"migration Job {_migration_job('staging')} failed or timed out" in proc.stderr
    assert f"kubectl logs -n {NAMESPACE} job/{_migration_job('staging')}" in proc.stderr
    assert not any(c[0] == "rollout" for c in cluster.calls)


def test_a_failed_job_of_the_same_release_is_deleted_so_that_it_runs_again(tmp_path):
    job = _migration_job("staging")
    cluster = FakeCluster(tmp_path, jobs={job: "Failed", "hitl-patch-service-db-migrate-older": "Failed"})
    proc = cluster.deploy("staging")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    delete_at = cluster.calls.index(["delete", "job", job, "-n", NAMESPACE, "--wait=true"])
    apply_at = next(i for i, c in enumerate(cluster.calls) if c[0] == "apply")
    assert delete_at < apply_at
    assert [c for c in cluster.calls if c[:2] == ["delete", "job"]] == [cluster.calls[delete_at]], "other releases' Jobs are left alone"


def test_a_completed_job_of_the_same_release_is_kept(tmp_path):
    cluster = FakeCluster(tmp_path, jobs={_migration_job("staging"): "Complete"})
    proc = cluster.deploy("staging")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not any(c[:2] == ["delete", "job"] for c in cluster.calls)


def _deploy_copy(tmp_path: Path) -> Path:
    """A copy of deploy/ to change an overlay the way an operator would (deploy.sh finds kustomize beside it)."""
    import shutil

    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns(".test-overlay-*", ".image-tag.*"))
    return copy


def test_external_secrets_are_applied_and_synced_before_the_secrets_are_checked(tmp_path):
    copy = _deploy_copy(tmp_path)
    overlay = copy / "kustomize" / "overlays" / "staging" / "kustomization.yaml"
    overlay.write_text(overlay.read_text().replace("  - ../../components/monitoring\n", "  - ../../components/monitoring\n  - ../../components/external-secrets\n"))
    cluster = FakeCluster(tmp_path, deploy_dir=copy)
    proc = cluster.deploy("staging")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    only_secrets = [c for c in cluster.calls if c[0] == "apply" and "-l" in c]
    waited = [c for c in cluster.calls if c[0] == "wait"]
    first_check = next(i for i, c in enumerate(cluster.calls) if c[:2] == ["get", "secret"])
    assert only_secrets and waited and cluster.calls.index(waited[0]) < first_check, cluster.calls
    assert ["get", "crd", "externalsecrets.external-secrets.io"] in cluster.calls

    for name, state, refusal in (
        ("not-synced", {"eso_ready": False}, "ExternalSecrets did not become Ready"),
        ("no-operator", {"eso_crds": False}, "External Secrets Operator CRDs are not installed"),
    ):
        (tmp_path / name).mkdir()
        refused = FakeCluster(tmp_path / name, deploy_dir=copy, **state)
        proc = refused.deploy("staging")
        assert proc.returncode != 0 and refusal in proc.stderr, name
        assert refused.applied is None, name


def test_refuses_a_migration_job_that_would_migrate_another_database(tmp_path):
    """An overlay that breaks the copy of POSTGRES_* into the Job's ConfigMap is caught before anything is applied."""
    copy = _deploy_copy(tmp_path)
    component = copy / "kustomize" / "components" / "migrations" / "kustomization.yaml"
    text = component.read_text()
    component.write_text(text[: text.index("replacements:")])
    cluster = FakeCluster(tmp_path, deploy_dir=copy)
    proc = cluster.deploy("staging")
    assert proc.returncode != 0 and "would use another POSTGRES_HOST than the service" in proc.stderr
    assert not any(c[0] == "apply" for c in cluster.calls)


def test_rendered_overlays_carry_no_secret():
    for overlay in ("staging", "production"):
        kinds = {d["kind"] for d in yaml.safe_load_all(build_overlay_text(overlay)) if d}
        assert "Secret" not in kinds
