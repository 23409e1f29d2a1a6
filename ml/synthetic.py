"""SYNTHETIC labelled patch history, for demos, tests and benchmarks. Never real data.

Everything produced here says so: patch ids start with "SYNTH-", APV ids with "APV-SYNTH-", the
submitter is "synthetic:generator", packages are called "demo-…", CVE ids are None or "CVE-0000-…",
reviewers are "synthetic:reviewer-N", and free texts start with "synthetic:".

The ground truth is a stated, plausible process (not learned from anything real):

1. The vulnerability: a random CVSS v3.1 base vector; its computed score gives `cvss_score` and the
   severity band (LOW < 4.0 <= MEDIUM < 7.0 <= HIGH < 9.0 <= CRITICAL), so vector, score and severity
   always agree. About 5% have no vector (severity drawn directly, score sometimes given). 0-2 CWE ids
   drawn from readable families (injection, XSS, memory safety, ...).
2. The change: a version bump (PATCH 55%, MINOR 28%, MAJOR 13%, OTHER 4%: calendar, post-release,
   four-part or unparseable schemes) applied to a random current version (20% are 0.x); a patch size
   drawn log-normally (larger for larger bumps); 0-12 affected systems; a small lockfile diff for 70%.
3. A latent "works" variable (deploys cleanly and fixes the vulnerability), Bernoulli with
   logit z = 3.6
       - {PATCH 0, MINOR 0.9, MAJOR 2.6, OTHER 1.2}[bump]
       - 0.8 if a MINOR bump of a 0.x package (semver allows breaking changes there)
       - 0.4 per major version skipped beyond one
       - 0.75 * max(0, log10(size) - 1.3)                  (bigger patches break more)
       - 1.1 memory-safety CWE, 0.5 deserialization CWE, 0.2 auth/access-control CWE
       - 0.15 per affected system
       - 0.35 if CRITICAL (rushed upstream fixes), 0.3 if the target is a pre-release.
   Severity and the rest of the CVSS vector do not change the odds (a model should learn to ignore them).
4. Wargaming (85% of patches) is noisy evidence about "works": with a public exploit (85%), phase 1
   (exploit reproduces on the vulnerable version) succeeds 90% of the time; phase 2 (exploit blocked
   after the patch) 97% if it works, 35% if not; validation (phase 1 and 2 and the test suite green)
   95% / 15% of those. Without an exploit, validation is the test suite alone (90% / 30%). Failures
   often carry an error message; execution time grows with patch size.
5. Decisions: 8% still PENDING and 3% ESCALATED (more when escalation is required: MAJOR + CRITICAL
   or 10+ affected systems, as in the default policy), 2% CANCELLED. A former policy AUTO_APPROVED
   half of the patches whose validation passed, that were not MAJOR nor escalation-bound, and whose
   evidence-based odds were >= 97% (they carry a synthetic ml_prediction). The rest were decided by a reviewer who sees the
   evidence: the decision equals "works" except for an error rate of 0.2% plus up to 15% on
   ambiguous cases (4q(1-q) with q the evidence-based probability).
6. Outcomes: 65% of APPROVED and AUTO_APPROVED patches later got a deployment outcome, equal to
   "works". So some AUTO_APPROVED patches have an outcome and some do not; REJECTED patches never do.

Deterministic for a given seed and `now`.

Regime shift (`shift=RegimeShift(...)`, for the auto-approval guard and drift tests): the world after a
model was trained. A share of the patches (`RegimeShift.share`, drawn from a random stream of its own, so
every other patch is the same with or without the shift) belongs to one family: packages
"demo-<a>-<family>-<c>" taking a MINOR upgrade of a 1.x-9.x release (target = next minor, ".0"), a patch size
drawn log-normally around `size_median` lines, and a works-logit lowered by `failure_logit` (a new kind of
breaking upgrade). What breaks does not show in the sandbox: the family's wargaming is drawn as if the patch
worked, so its evidence looks as good as ever and only the deployment outcome tells. Which features move:
the version-bump kind and distances and the size (the family is MINOR and larger than most); the
vulnerability (CVSS, CWE, severity) and the blast radius are drawn as before and do not move.
`generate_submissions` returns the same patches with their ground truth, for replaying a stream through the
service (the truth is the deployment outcome a test reports).
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache

from cvss import CVSS3

from db.models import Patch, patch_group_key

SUBMITTED_BY = "synthetic:generator"
AUTO_APPROVER = "system:auto-approval"
PRIORITY_RANK = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
SLA_SECONDS = {"CRITICAL": 300, "HIGH": 600, "MEDIUM": 900, "LOW": 0}

_WORDS_A = ("acme", "tiny", "fast", "mock", "sample", "toy", "fake", "demo", "pseudo", "dummy", "placeholder", "example")
_WORDS_B = ("yaml", "http", "json", "crypto", "image", "xml", "auth", "orm", "template", "zip", "log", "cache", "rpc", "csv")
_WORDS_C = ("lib", "kit", "parser", "client", "core", "utils", "io", "engine")

CWE_CHOICES: dict[str, tuple[int, ...]] = {
    "injection": (89, 78, 94, 77, 917),
    "xss": (79,),
    "memory_safety": (787, 416, 125, 120, 476, 190),
    "auth_access_control": (287, 862, 863, 306, 285, 639),
    "crypto": (327, 295, 330, 347),
    "deserialization": (502,),
    "path_traversal": (22, 434, 59),
    "resource_exhaustion": (400, 770, 1333, 674),
    "request_forgery": (352, 918, 601),
    "information_exposure": (200, 209, 532),
    "other": (20, 362, 693, 668),
}
_CWE_WEIGHTS = {
    "injection": 12, "xss": 12, "memory_safety": 12, "auth_access_control": 10, "crypto": 6,
    "deserialization": 5, "path_traversal": 7, "resource_exhaustion": 12, "request_forgery": 6,
    "information_exposure": 8, "other": 10,
}

_V3_METRICS = (
    ("AV", ("N", "A", "L", "P"), (70, 8, 18, 4)),
    ("AC", ("L", "H"), (80, 20)),
    ("PR", ("N", "L", "H"), (55, 35, 10)),
    ("UI", ("N", "R"), (65, 35)),
    ("S", ("U", "C"), (80, 20)),
    ("C", ("N", "L", "H"), (25, 30, 45)),
    ("I", ("N", "L", "H"), (30, 30, 40)),
    ("A", ("N", "L", "H"), (35, 20, 45)),
)

_REJECT_REASONS = (
    "synthetic: breaks the public API used by dependants",
    "synthetic: wargaming validation did not pass",
    "synthetic: regression in integration tests",
    "synthetic: patch larger than the fix needs",
)
_ERRORS_FAILED = (
    "synthetic: test suite failed",
    "synthetic: exploit still succeeds after the patch",
    "synthetic: build failed on the patched version",
    "synthetic: sandbox timeout",
)


@dataclass(frozen=True)
class RegimeShift:
    """See the module docstring, "Regime shift"."""

    share: float = 0.3
    family: str = "yaml"
    failure_logit: float = 6.0
    size_median: int = 150
    seed_salt: int = 0x5EED5

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError("share must be in [0, 1]")


def _shifted(rng: random.Random, package: str, shift: RegimeShift) -> tuple[str, str, str, int]:
    """(package, current, target, size) of a patch of the shifted family (rng: the shift's own stream)."""
    a, _, c = package.removeprefix("demo-").split("-")
    major, minor, patch = rng.randint(1, 9), rng.randint(0, 20), rng.randint(0, 30)
    size = max(1, int(rng.lognormvariate(math.log(shift.size_median), 0.6)))
    return f"demo-{a}-{shift.family}-{c}", f"{major}.{minor}.{patch}", f"{major}.{minor + 1}.0", size


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@lru_cache(maxsize=4096)
def _v3_score(vector: str) -> float:
    return float(CVSS3(vector).base_score)


def _severity_for(score: float) -> str:
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    return "LOW"


def _cvss(rng: random.Random) -> tuple[str | None, float | None, str]:
    """(vector, score, severity): a CVSS v3.1 vector and its own score and band, or sometimes none."""
    if rng.random() < 0.05:
        severity = rng.choices(SEVERITIES, weights=(10, 40, 35, 15))[0]
        low, high = {"LOW": (0.1, 3.9), "MEDIUM": (4.0, 6.9), "HIGH": (7.0, 8.9), "CRITICAL": (9.0, 10.0)}[severity]
        score = round(rng.uniform(low, high), 1) if rng.random() < 0.5 else None
        return None, score, severity
    while True:
        parts = [f"{key}:{rng.choices(values, weights=weights)[0]}" for key, values, weights in _V3_METRICS]
        vector = "CVSS:3.1/" + "/".join(parts)
        score = _v3_score(vector)
        if score > 0.0:
            return vector, score, _severity_for(score)


def _versions(rng: random.Random) -> tuple[str, str, str]:
    """(current, target, bump kind)."""
    bump = rng.choices(("PATCH", "MINOR", "MAJOR", "OTHER"), weights=(55, 28, 13, 4))[0]
    major = 0 if rng.random() < 0.2 else rng.randint(1, 12)
    minor, patch = rng.randint(0, 20), rng.randint(0, 30)
    current = f"{major}.{minor}.{patch}"
    step = 1 if rng.random() < 0.75 else rng.randint(2, 3)
    if bump == "PATCH":
        target = f"{major}.{minor}.{patch + step}"
    elif bump == "MINOR":
        target = f"{major}.{minor + step}.{rng.choice((0, 0, 0, 1))}"
    elif bump == "MAJOR":
        target = f"{major + step}.0.0"
    else:
        scheme = rng.randrange(4)
        if scheme == 0:  # calendar versions
            year = rng.randint(2019, 2024)
            current, target = f"{year}.{rng.randint(1, 12)}", f"{year + 1}.{rng.randint(1, 12)}"
        elif scheme == 1:  # post release of the same version
            target = f"{current}.post{step}"
        elif scheme == 2:  # four-part versions
            current, target = f"{current}.{rng.randint(0, 9)}", f"{current}.{10 + step}"
        else:  # not PEP 440 at all
            current, target = f"r{rng.randint(100, 900)}-synthetic", f"r{rng.randint(901, 999)}-synthetic"
    if bump != "OTHER" and rng.random() < 0.03:
        target += f"rc{step}"
    return current, target, bump


def _works_logit(*, bump: str, current: str, target: str, size: int, families: set[str], affected: int,
                 severity: str) -> float:
    z = 3.6 - {"PATCH": 0.0, "MINOR": 0.9, "MAJOR": 2.6, "OTHER": 1.2}[bump]
    if bump == "MINOR" and current.startswith("0."):
        z -= 0.8
    if bump == "MAJOR":
        z -= 0.4 * max(0, int(target.split(".")[0]) - int(current.split(".")[0]) - 1)
    z -= 0.75 * max(0.0, math.log10(max(size, 1)) - 1.3)
    z -= 1.1 * ("memory_safety" in families) + 0.5 * ("deserialization" in families)
    z -= 0.2 * ("auth_access_control" in families)
    z -= 0.15 * affected
    z -= 0.35 * (severity == "CRITICAL")
    z -= 0.3 * ("rc" in target)
    return z


def _wargaming(rng: random.Random, *, works: bool, size: int) -> tuple[dict, float]:
    """(wargaming result, log likelihood ratio of its verdict for "works")."""
    exploit = rng.random() < 0.85
    if exploit:
        phase1 = rng.random() < 0.9
        phase2 = phase1 and rng.random() < (0.97 if works else 0.35)
        validation = phase2 and rng.random() < (0.95 if works else 0.15)
        llr = math.log((0.9 * 0.97 * 0.95) / (0.9 * 0.35 * 0.15)) if validation else -1.2 if phase1 else 0.0
    else:
        phase1 = phase2 = False
        validation = rng.random() < (0.9 if works else 0.3)
        llr = math.log(0.9 / 0.3) if validation else math.log(0.1 / 0.7)
    error = None
    if not validation and rng.random() < (0.5 if works else 0.75):
        error = rng.choice(_ERRORS_FAILED)
    exec_ms = int(rng.lognormvariate(math.log(45_000 * (max(size, 1) / 30) ** 0.2), 0.4))
    if error == "synthetic: sandbox timeout":
        exec_ms = max(exec_ms, 300_000)
    result = {
        "phase1Success": phase1,
        "phase2Success": phase2,
        "validationPassed": validation,
        "executionTimeMs": exec_ms,
        "errorMessage": error,
        "exploitId": f"EXP-SYNTH-{rng.randrange(10**6):06d}" if exploit else None,
    }
    return result, llr


def _diff(package: str, current: str, target: str) -> str:
    return (
        "diff --git a/requirements.lock b/requirements.lock\n"
        "--- a/requirements.lock\n"
        "+++ b/requirements.lock\n"
        "@@ -1 +1 @@\n"
        f"-{package}=={current}\n"
        f"+{package}=={target}\n"
    )


def generate_patches(n: int, *, seed: int, now: datetime | None = None, shift: RegimeShift | None = None) -> list[Patch]:
    """`n` unsaved, visibly synthetic `Patch` rows with a labelled history (see the module docstring).

    `now` (aware UTC; default: the current time) anchors every timestamp: open patches were created in
    the last six hours, decided ones in the last 120 days; nothing lies in the future of `now`.
    """
    return [patch for patch, _ in generate_submissions(n, seed=seed, now=now, shift=shift)]


def generate_submissions(
    n: int, *, seed: int, now: datetime | None = None, shift: RegimeShift | None = None
) -> list[tuple[Patch, bool]]:
    """The patches of `generate_patches` with their ground truth ("works"), e.g. to submit their evidence and
    report the truth as the deployment outcome."""
    if n < 0:
        raise ValueError("n must be >= 0")
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    rng = random.Random(seed)
    shift_rng = random.Random(seed ^ shift.seed_salt) if shift is not None else None
    families_all = list(_CWE_WEIGHTS)
    weights_all = list(_CWE_WEIGHTS.values())
    patches: list[tuple[Patch, bool]] = []
    for i in range(n):
        vector, score, severity = _cvss(rng)
        n_cwe = rng.choices((0, 1, 2), weights=(10, 70, 20))[0]
        families = set(rng.choices(families_all, weights=weights_all, k=n_cwe))
        cwe_ids = sorted({f"CWE-{rng.choice(CWE_CHOICES[f])}" for f in sorted(families)})
        current, target, bump = _versions(rng)
        size_median = {"PATCH": 25, "MINOR": 80, "MAJOR": 300, "OTHER": 60}[bump]
        size = max(1, int(rng.lognormvariate(math.log(size_median), 1.0)))
        affected = min(12, int(rng.expovariate(1 / 1.8)))
        package = f"demo-{rng.choice(_WORDS_A)}-{rng.choice(_WORDS_B)}-{rng.choice(_WORDS_C)}"
        in_family = shift_rng is not None and shift_rng.random() < shift.share
        if in_family:
            package, current, target, size = _shifted(shift_rng, package, shift)
            bump = "MINOR"

        z = _works_logit(bump=bump, current=current, target=target, size=size, families=families,
                         affected=affected, severity=severity)
        if in_family:
            z -= shift.failure_logit
        works = rng.random() < _sigmoid(z)
        # The shifted family's breakage does not show in the sandbox: its evidence is that of a working patch.
        wargaming, llr = _wargaming(rng, works=works or in_family, size=size) if rng.random() < 0.85 else (None, 0.0)
        q = _sigmoid(z + llr)  # what the evidence says, as a reviewer (or a model) could see it

        priority = severity if affected < 5 or severity in ("HIGH", "CRITICAL") else "HIGH"
        requires_escalation = (bump == "MAJOR" and severity == "CRITICAL") or affected >= 10
        validated = bool(wargaming and wargaming["validationPassed"])

        r = rng.random()
        if r < 0.08:
            status = "PENDING"
        elif r < 0.11 + (0.15 if requires_escalation else 0.0):
            status = "ESCALATED"
        elif r < 0.13 + (0.15 if requires_escalation else 0.0):
            status = "CANCELLED"
        elif validated and bump != "MAJOR" and not requires_escalation and q >= 0.97 and rng.random() < 0.5:
            status = "AUTO_APPROVED"
        else:
            error = 0.002 + 0.15 * 4 * q * (1 - q)
            status = "APPROVED" if works != (rng.random() < error) else "REJECTED"

        open_ = status in ("PENDING", "ESCALATED")
        age = rng.uniform(30, 6 * 3600) if open_ else rng.uniform(3600, 120 * 86400)
        created = now - timedelta(seconds=age)
        sla = SLA_SECONDS[priority]
        sla_deadline = created + timedelta(seconds=sla) if sla else None
        sla_at_risk_at = created + timedelta(seconds=0.8 * sla) if sla else None

        decided_by = decided_at = reason = comment = None
        if status == "AUTO_APPROVED":
            decided_by, decided_at = AUTO_APPROVER, created + timedelta(seconds=rng.uniform(1, 120))
        elif status in ("APPROVED", "REJECTED", "CANCELLED"):
            decided_by = f"synthetic:reviewer-{rng.randint(1, 8)}"
            decided_at = created + timedelta(seconds=min(age - 60, rng.lognormvariate(math.log(480), 0.8)))
            if status == "REJECTED":
                reason = rng.choice(_REJECT_REASONS)
            elif status == "CANCELLED":
                reason = "synthetic: superseded by a newer upstream patch"
            elif rng.random() < 0.3:
                comment = "synthetic: looks good"
        elif status == "ESCALATED":
            reason = "synthetic: needs a lead's review"

        outcome = outcome_at = outcome_details = None
        if status in ("APPROVED", "AUTO_APPROVED") and rng.random() < 0.65:
            outcome = works
            outcome_at = min(now, decided_at + timedelta(seconds=rng.uniform(600, 3 * 86400)))
            outcome_details = ("synthetic: deployed, health checks green" if works
                               else "synthetic: rolled back after error rate rose")

        ml_prediction = None
        if status == "AUTO_APPROVED":
            ml_prediction = {"modelVersion": "synthetic-history", "confidence": round(q, 4), "prediction": True,
                             "shapValues": [], "executionTimeMs": 0.0, "source": "synthetic"}
        sla_breached_at = None
        if sla_deadline is not None and decided_at is not None and decided_at > sla_deadline:
            sla_breached_at = sla_deadline

        patches.append((
            Patch(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                patch_id=f"SYNTH-{seed}-{i:07d}",
                apv_id=f"APV-SYNTH-{seed}-{i:07d}",
                cve_id=None if rng.random() < 0.1 else f"CVE-0000-{rng.randrange(10**5):05d}",
                package_name=package,
                current_version=current,
                target_version=target,
                version_bump=bump,
                severity=severity,
                cvss_score=score,
                cvss_vector=vector,
                cwe_ids=cwe_ids,
                affected_systems=[f"synthetic-system-{k:02d}" for k in sorted(rng.sample(range(40), affected))],
                patch_size_lines=size,
                diff=_diff(package, current, target) if rng.random() < 0.7 else None,
                priority=priority,
                priority_rank=PRIORITY_RANK[priority],
                status=status,
                ml_prediction=ml_prediction,
                wargaming=wargaming,
                ml_wargaming_agreement=(None if ml_prediction is None or wargaming is None
                                        else wargaming["validationPassed"] is True),
                auto_approval_eligible=status == "AUTO_APPROVED",
                requires_escalation=requires_escalation,
                submitted_by=SUBMITTED_BY,
                decided_by=decided_by,
                decided_at=decided_at,
                deployment_outcome=outcome,
                outcome_details=outcome_details,
                outcome_at=outcome_at,
                reason=reason,
                comment=comment,
                created_at=created,
                updated_at=max(t for t in (created, decided_at, outcome_at) if t is not None),
                sla_deadline=sla_deadline,
                sla_at_risk_at=sla_at_risk_at,
                sla_breached_at=sla_breached_at,
                version=1,
                required_approvals=2 if severity == "CRITICAL" else 1,
            ),
            works,
        ))
        patches[-1][0].group_key = patch_group_key(patches[-1][0].cve_id, package, target)
    return patches
