"""Patches for the console tests and benchmark, submitted over HTTP as upstream would: varied priorities, CVSS
vectors, diffs, predictions with SHAP values and wargaming results (seeded, so every run looks the same)."""

import random

import httpx

from ml.features import FEATURE_NAMES
from tests.support.server import SERVICE

SUBMIT = "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { patch { id patchId version status priority } } }"
VECTORS = {
    "CRITICAL": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "HIGH": "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N",
    "MEDIUM": "CVSS:3.1/AV:N/AC:H/PR:L/UI:R/S:U/C:L/I:L/A:L",
    "LOW": "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
}
PACKAGES = ("openssl", "requests", "urllib3", "jinja2", "pyyaml", "lxml", "django", "flask", "cryptography", "pillow", "log4j-core", "express")
CWES = ("CWE-79", "CWE-89", "CWE-502", "CWE-22", "CWE-400", "CWE-787", "CWE-287", "CWE-918")
SYSTEMS = ("billing", "checkout", "search", "auth", "reporting", "ingest", "notifications")


def gql(client: httpx.Client, base: str, query: str, variables: dict | None = None, *, token: str = SERVICE) -> dict:
    body = client.post(f"{base}/graphql", json={"query": query, "variables": variables or {}}, headers={"Authorization": f"Bearer {token}"}).json()
    assert "errors" not in body, body
    return body["data"]


def diff_for(package: str, current: str, target: str, rng: random.Random) -> str:
    context = [f"{name}=={rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}" for name in rng.sample(PACKAGES, 4) if name != package]
    return (
        "diff --git a/requirements.lock b/requirements.lock\n--- a/requirements.lock\n+++ b/requirements.lock\n"
        f"@@ -{rng.randint(3, 80)},5 +{rng.randint(3, 80)},5 @@\n"
        + "".join(f" {line}\n" for line in context[:2])
        + f"-{package}=={current}\n+{package}=={target}\n"
        + "".join(f" {line}\n" for line in context[2:])
    )


def patch_input(n: int, rng: random.Random, *, prefix: str = "CON", severity: str | None = None, **overrides: object) -> dict:
    severity = severity or rng.choices(("CRITICAL", "HIGH", "MEDIUM", "LOW"), weights=(1, 3, 3, 1))[0]
    package = rng.choice(PACKAGES)
    major, minor, patch = rng.randint(0, 5), rng.randint(0, 30), rng.randint(0, 20)
    bump = rng.choices(("patch", "minor", "major"), weights=(6, 3, 1))[0]
    target = {"patch": f"{major}.{minor}.{patch + 1}", "minor": f"{major}.{minor + 1}.0", "major": f"{major + 1}.0.0"}[bump]
    current = f"{major}.{minor}.{patch}"
    works = rng.random() < 0.8
    confidence = rng.uniform(0.86, 0.94) if works else rng.uniform(0.55, 0.9)
    shap = sorted(({"feature": name, "value": round(rng.gauss(0, 0.25), 4)} for name in rng.sample(FEATURE_NAMES, 16)), key=lambda c: -abs(c["value"]))
    data = {
        "patchId": f"{prefix}-{n:05d}",
        "apvId": f"APV-{prefix}-{n:05d}",
        "cveId": f"CVE-2026-{20000 + n}",
        "packageName": package,
        "currentVersion": current,
        "targetVersion": target,
        "cvssVector": VECTORS[severity],
        "cweIds": rng.sample(CWES, rng.randint(1, 2)),
        "affectedSystems": rng.sample(SYSTEMS, rng.randint(1, 3)),
        "patchSizeLines": rng.randint(2, 400),
        "diff": diff_for(package, current, target, rng),
        "mlPrediction": {"modelVersion": "upstream-2026.11", "confidence": round(confidence, 4), "prediction": works, "shapValues": shap,
                         "executionTimeMs": round(rng.uniform(2, 9), 2)},
    }
    if rng.random() < 0.7:
        data["wargaming"] = {"phase1Success": True, "phase2Success": works, "validationPassed": works, "executionTimeMs": rng.randint(9000, 240000),
                             "exploitId": f"EXP-{rng.randint(1000, 9999)}", "errorMessage": None if works else "exploit still succeeds after the upgrade"}
    return {**data, **overrides}


def seed(client: httpx.Client, base: str, count: int, *, seed: int = 17, prefix: str = "CON", token: str = SERVICE) -> list[dict]:
    """`count` pending patches (predictions below any auto-approval threshold, so none is auto-approved)."""
    rng = random.Random(seed)
    return [gql(client, base, SUBMIT, {"i": patch_input(n, rng, prefix=prefix)}, token=token)["submitPatch"]["patch"] for n in range(1, count + 1)]
