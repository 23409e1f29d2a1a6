"""Property tests of the domain services (issue 8, hardening).

Hypothesis generates programs: sequences of service calls by different actors (SERVICE, REVIEWER,
LEAD, ADMIN, VIEWER, a SERVICE+REVIEWER robot, and "owner" = the patch's own submitter): submissions
(varied severity/CVSS score/priority/version bump/blast radius/model prediction/wargaming, repeated
patchIds, conflicting scores), wargaming results (auto-approval), approve/reject/escalate/cancel,
comments (threads, replies across patches), deployment outcomes, the auto-approval kill switch, SLA
sweeps, and pairs of calls run concurrently (two decisions, decision + evidence, the same patchId
twice, pause + auto-approving evidence, two outcomes). Many calls must be refused: wrong role,
self-approval, the same approver twice, a stale `expectedVersion`, deciding a final patch, blank
reasons, an unknown patch.

Checked after every step:
- the call did what a small reference model of API.md says (success, or refusal with one of the
  error codes that apply; status, version, approvals, requiresEscalation, outcome, SLA flag,
  decidedBy of each patch; the pause); concurrent pairs must equal one of the two serial orders;
- a refused call changed nothing (same rows, approvals, comments, pause, audit head); a successful
  one appended exactly the audit entries it should;
- replaying each patch's audit trail reproduces its row: status and version, at most one final
  decision (exactly one iff the status is final), nothing but comments/outcome after it, approvals
  by distinct non-submitters matching APPROVAL_RECORDED/APPROVED events, comment and SLA counts.
Checked after every program:
- verifyAuditChain (audit.verify_chain) is valid over every row, and the program's entries chain;
- the analytics summary's counts and rates equal SQL counts over the table, and the summary since
  the program began equals every figure recomputed from the program's rows;
- the pending queue, paged with cursors, is exactly the PENDING/ESCALATED rows in queue order.

One database per backend for the whole test (a fresh PostgreSQL database per example would dominate
the run): each program uses its own patch ids, blames itself only for audit entries it wrote, and
cancels its open patches at the end (through the service, checked like any step) so the queue stays
small. Hypothesis is derandomized with no example database: the same programs on every run.
Measured on the 2-core box: 50 programs per backend, 5-24 steps each (~500 checked steps per
backend including the clean-up); about 18-20 s of tests, 23-26 s wall for the file.
`HITL_PROPERTY_EXAMPLES` raises the number of programs for a longer local run.
"""

import asyncio
import copy
import itertools
import json
import math
import os
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import engine as hypothesis_engine
from sqlalchemy import func, text
from sqlmodel import select

from db.enums import PRIORITY_RANK, Priority, Role, SystemAction
from db.models import SYSTEM_DECISION_ID, Approval, AuditEntry, Comment, Patch
from db.services import analytics, audit, auto_approval, comments, decisions, queue, sla, submission
from db.services.actor import Actor
from db.services.errors import BadUserInput, Conflict, DomainError, Forbidden, NotFound
from db.services.policy import AUTO_APPROVAL_ACTOR, Policy
from db.services.submission import PredictionData, SubmitPatchData, WargamingData
from db.types import utcnow

pytestmark = pytest.mark.hardening

EXAMPLES = int(os.environ.get("HITL_PROPERTY_EXAMPLES", "50"))
# Shrinking re-runs whole programs (~0.1-1 s each), so it is capped at HITL_PROPERTY_SHRINK_SECONDS per failure
# (Hypothesis' own cap, five minutes, is meant to be monkeypatched); HITL_PROPERTY_SHRINK=0 skips it altogether
# and reports the first failing program as found.
SHRINK = os.environ.get("HITL_PROPERTY_SHRINK", "1") != "0"
SHRINK_SECONDS = int(os.environ.get("HITL_PROPERTY_SHRINK_SECONDS", "60"))
MAX_STEPS = 20
POLICY = Policy()
SLA_ESCALATING = Policy(sla_auto_escalate=True)

OPEN = {"PENDING", "ESCALATED"}
FINAL = {"APPROVED", "REJECTED", "AUTO_APPROVED", "CANCELLED"}
APPROVED = {"APPROVED", "AUTO_APPROVED"}
FINAL_EVENTS = {"APPROVED", "REJECTED", "AUTO_APPROVED", "CANCELLED"}
UNKNOWN_ID = uuid.UUID("00000000-0000-4000-8000-00000000dead")

ACTORS = {
    "svc": Actor("service:upstream", frozenset({Role.SERVICE}), "10.0.0.1", "crisol/1.0"),
    "robot": Actor("robot", frozenset({Role.SERVICE, Role.REVIEWER})),  # submits and may review: self-approval
    "rita": Actor("rita", frozenset({Role.REVIEWER}), "192.0.2.10", "browser"),
    "rob": Actor("rob", frozenset({Role.REVIEWER})),
    "lena": Actor("lena", frozenset({Role.LEAD})),
    "leo": Actor("leo", frozenset({Role.LEAD})),
    "adam": Actor("adam", frozenset({Role.ADMIN})),
    "ada": Actor("ada", frozenset({Role.ADMIN})),
    "vera": Actor("vera", frozenset({Role.VIEWER})),
}
# "owner": the submitter of the target patch (separation of duties)
DECIDERS = ["rita", "rob", "lena", "leo", "adam", "ada", "rita", "lena", "adam", "robot", "svc", "vera", "owner", "owner", "owner", "owner"]
SUBMITTERS = ["svc", "robot", "adam", "svc", "robot", "adam", "rita"]  # robot and adam may also approve: self-approval


def can(name: str, *roles: Role) -> bool:
    return bool(ACTORS[name].roles & set(roles))


# ---------------------------------------------------------------------------------------------------
# Operations (the repr is what a failing, shrunk program prints)


@dataclass(frozen=True)
class Submit:
    by: str
    key: int  # patchId within the example: equal keys are a resubmission
    severity: str | None  # None: derived from the CVSS score
    score: float | None
    priority: str | None
    bump: str
    wide: bool  # 10 affected systems: requires escalation
    prediction: tuple[float, bool] | None
    wargaming: tuple[bool, bool] | None  # (phase1Success, validationPassed)

    def __repr__(self) -> str:
        sev = self.severity or "-"
        extras = [f"score={self.score}" if self.score is not None else "", f"prio={self.priority}" if self.priority else ""]
        extras += [self.bump, "wide" if self.wide else "", f"ml={self.prediction}" if self.prediction else ""]
        extras += [f"war={self.wargaming}" if self.wargaming else ""]
        return f"submit(P{self.key} by {self.by}: {sev} {' '.join(e for e in extras if e)})"


@dataclass(frozen=True)
class Wargaming:
    by: str
    target: int
    phase1: bool
    validation: bool

    def __repr__(self) -> str:
        return f"wargaming(#{self.target} by {self.by}: phase1={self.phase1} validation={self.validation})"


@dataclass(frozen=True)
class Decide:
    kind: str  # approve | reject | escalate | cancel
    by: str
    target: int
    version: str | None = None  # None | "current" | "stale"
    blank: bool = False  # a blank reason

    def __repr__(self) -> str:
        extras = (f" expected={self.version}" if self.version else "") + (" reason=''" if self.blank and self.kind != "approve" else "")
        return f"{self.kind}(#{self.target} by {self.by}{extras})"


@dataclass(frozen=True)
class AddComment:
    by: str
    target: int
    parent: str | None  # None | "same" (reply on this patch) | "other" (a comment on another patch)
    blank: bool = False

    def __repr__(self) -> str:
        return f"comment(#{self.target} by {self.by}{f' parent={self.parent}' if self.parent else ''}{' blank' if self.blank else ''})"


@dataclass(frozen=True)
class Outcome:
    by: str
    target: int
    success: bool

    def __repr__(self) -> str:
        return f"outcome(#{self.target} by {self.by}: {self.success})"


@dataclass(frozen=True)
class Pause:
    by: str
    paused: bool

    def __repr__(self) -> str:
        return f"{'pause' if self.paused else 'resume'}(by {self.by})"


@dataclass(frozen=True)
class SlaSweep:
    escalate: bool

    def __repr__(self) -> str:
        return f"sla_sweep(+2h{', auto-escalate' if self.escalate else ''})"


@dataclass(frozen=True)
class Race:
    first: object
    second: object

    def __repr__(self) -> str:
        return f"concurrently[{self.first!r} || {self.second!r}]"


# Targets: an index into the example's patches (modulo their number); -1 is an id that does not exist.
targets = st.sampled_from([0, 1, 2, 3, 0, 1, 0, -1])
SCORES = {"LOW": [0.0, 3.9], "MEDIUM": [4.0, 6.9], "HIGH": [7.0, 8.9], "CRITICAL": [9.0, 10.0]}


@st.composite
def submits(draw: st.DrawFn) -> Submit:
    if draw(st.integers(0, 3)) == 0:  # evidence the auto-approval policy accepts, but for the confidence maybe
        return Submit(
            by=draw(st.sampled_from(SUBMITTERS)), key=draw(st.integers(0, 6)), severity=draw(st.sampled_from(list(SCORES))),
            score=None, priority=None, bump=draw(st.sampled_from(["PATCH", "MINOR"])), wide=False,
            prediction=(draw(st.sampled_from([0.99, 0.95, 0.94, 0.5])), True), wargaming=draw(st.sampled_from([None, (True, True)])),
        )  # fmt: skip
    severity = draw(st.sampled_from(list(SCORES)))
    mode = draw(st.sampled_from(["severity", "severity", "score", "both", "both", "conflict"]))
    score = None
    if mode in ("score", "both"):
        score = draw(st.sampled_from(SCORES[severity]))
    elif mode == "conflict":  # the score says another severity: BAD_USER_INPUT
        score = draw(st.sampled_from([s for other, values in SCORES.items() if other != severity for s in values]))
    return Submit(
        by=draw(st.sampled_from(SUBMITTERS)),
        key=draw(st.integers(0, 6)),
        severity=None if mode == "score" else severity,
        score=score,
        priority=draw(st.one_of(st.none(), st.none(), st.sampled_from([p.value for p in Priority]))),
        bump=draw(st.sampled_from(["PATCH", "MINOR", "MAJOR"])),
        wide=draw(st.sampled_from([False, False, False, True])),
        prediction=draw(st.one_of(st.none(), st.tuples(st.sampled_from([0.5, 0.94, 0.95, 0.99]), st.booleans()))),
        wargaming=draw(st.one_of(st.none(), st.tuples(st.sampled_from([True, True, False]), st.booleans()))),
    )


deciders = st.sampled_from(DECIDERS)
versions = st.sampled_from([None, None, "current", "stale"])
decides = st.builds(
    Decide,
    kind=st.sampled_from(["approve", "reject", "escalate", "cancel", "approve", "reject", "approve"]),
    by=deciders,
    target=targets,
    version=versions,
    blank=st.sampled_from([False, False, False, False, True]),
)
wargamings = st.builds(Wargaming, by=st.sampled_from(["svc", "svc", "adam", "rita"]), target=targets,
                       phase1=st.sampled_from([True, True, False]), validation=st.sampled_from([True, True, False]))  # fmt: skip
comment_ops = st.builds(AddComment, by=deciders, target=targets, parent=st.sampled_from([None, None, "same", "other"]),
                        blank=st.sampled_from([False, False, False, True]))  # fmt: skip
outcomes = st.builds(Outcome, by=st.sampled_from(["svc", "svc", "adam", "lena"]), target=targets, success=st.booleans())
pauses = st.builds(Pause, by=st.sampled_from(["adam", "adam", "lena"]), paused=st.sampled_from([False, False, True]))
sweeps = st.builds(SlaSweep, escalate=st.booleans())


@st.composite
def races(draw: st.DrawFn) -> Race:
    """Two calls at the same time (really concurrent on PostgreSQL; serialized on SQLite)."""
    target = draw(st.integers(0, 6))
    shape = draw(st.sampled_from(["decisions", "decisions", "decision+evidence", "submissions", "pause+evidence", "outcomes", "outcomes"]))
    if shape == "submissions":  # the same patchId twice: exactly one is created
        first = draw(submits())
        return Race(first, Submit(**{**first.__dict__, "by": draw(st.sampled_from(["svc", "adam", "robot"]))}))
    if shape == "pause+evidence":  # the kill switch against an auto-approving wargaming result
        return Race(Pause("adam", draw(st.booleans())), Wargaming("svc", target, True, True))
    if shape == "outcomes":  # the deployer reports twice: at most one is recorded
        return Race(Outcome("svc", target, True), Outcome("adam", target, False))
    kinds = st.sampled_from(["approve", "approve", "reject", "cancel", "escalate"])
    names = draw(st.lists(st.sampled_from(["rita", "rob", "lena", "leo", "adam", "ada"]), min_size=2, max_size=2, unique=True))
    ops = [Decide(kind=draw(kinds), by=name, target=target) for name in names]
    if shape == "decision+evidence":
        ops[1] = draw(st.sampled_from([Wargaming("svc", target, True, True), Outcome("svc", target, True),
                                       AddComment(names[1], target, None)]))  # fmt: skip
    return Race(*ops)


# Weighted (st.one_of would collapse repeated strategies): decisions are the heart of the rules.
STEP_WEIGHTS = [(decides, 6), (submits(), 2), (races(), 2), (wargamings, 2), (comment_ops, 2), (outcomes, 2), (pauses, 1), (sweeps, 1)]
steps = st.sampled_from([strategy for strategy, weight in STEP_WEIGHTS for _ in range(weight)]).flatmap(lambda strategy: strategy)
programs = st.tuples(st.lists(submits(), min_size=1, max_size=4), st.lists(steps, min_size=4, max_size=MAX_STEPS)).map(
    lambda parts: parts[0] + parts[1]
)


# ---------------------------------------------------------------------------------------------------
# The reference model


@dataclass
class MPatch:
    key: int
    id: uuid.UUID | None
    submitter: str
    severity: str
    priority: str
    bump: str
    wide: bool
    prediction: tuple[float, bool] | None
    wargaming: tuple[bool, bool] | None
    status: str = "PENDING"
    version: int = 1
    approvals: list[str] = field(default_factory=list)
    outcome: bool | None = None
    breached: bool = False
    comments: list[uuid.UUID] = field(default_factory=list)
    decided_by: str | None = None

    @property
    def required(self) -> int:
        return 2 if self.severity == "CRITICAL" else 1

    @property
    def agreement(self) -> bool | None:
        if self.prediction is None or self.wargaming is None:
            return None
        return self.prediction[1] == self.wargaming[1]

    @property
    def requires_escalation(self) -> bool:
        return (
            (self.severity == "CRITICAL" and self.bump == "MAJOR")
            or self.wide
            or self.agreement is False
            or (self.wargaming is not None and self.wargaming[1] and not self.wargaming[0])
        )

    def auto_approvable(self) -> bool:
        return (
            self.prediction is not None
            and self.prediction[1]
            and self.prediction[0] >= POLICY.auto_approve_min_confidence
            and self.wargaming is not None
            and self.wargaming[1]
            and self.agreement is not False
            and self.bump != "MAJOR"
            and not self.requires_escalation
            and self.status == "PENDING"
        )


@dataclass
class Model:
    prefix: str
    paused: bool
    patches: dict[int, MPatch] = field(default_factory=dict)  # by key, in submission order

    def ordered(self) -> list[MPatch]:
        return [p for p in self.patches.values() if p.id is not None]

    def by_id(self, patch_id: uuid.UUID | None) -> MPatch | None:
        return next((p for p in self.patches.values() if p.id == patch_id), None)


def score_severity(score: float) -> str:
    return "CRITICAL" if score >= 9 else "HIGH" if score >= 7 else "MEDIUM" if score >= 4 else "LOW"


@dataclass
class Call:
    """An operation with its targets resolved against the model just before it runs."""

    op: object
    by: str | None = None  # the acting actor's name ("owner" resolved to the patch's submitter)
    patch_id: uuid.UUID | None = None
    expected_version: int | None = None
    parent_id: uuid.UUID | None = None


def resolve(op: object, model: Model) -> Call:
    if isinstance(op, (Submit, Pause, SlaSweep)):
        return Call(op, by=getattr(op, "by", None))
    patches = model.ordered()
    if isinstance(op, Outcome):  # the deployer reports on approved patches, when there are any
        patches = [p for p in patches if p.status in APPROVED] or patches
    target = patches[op.target % len(patches)] if patches and op.target >= 0 else None
    by = op.by
    if by == "owner":  # the submitter of the target acts on it (e.g. tries to approve its own patch)
        by = next((name for name, actor in ACTORS.items() if target and actor.subject == target.submitter), "svc")
    call = Call(op, by=by, patch_id=target.id if target else UNKNOWN_ID)
    if isinstance(op, Decide) and op.version and target and op.kind != "cancel":  # cancelPatch has no expectedVersion
        call.expected_version = target.version if op.version == "current" else (target.version - 1 or target.version + 1)
    if isinstance(op, AddComment) and op.parent and target:
        if op.parent == "same" and target.comments:
            call.parent_id = target.comments[-1]
        elif op.parent == "other":
            call.parent_id = next((c for p in patches if p is not target for c in p.comments), None)
    return call


@dataclass
class Expect:
    errors: frozenset  # empty: the call must succeed
    audit: int = 0  # audit entries a success appends (None: as many as patches swept)
    created: bool | None = None  # for submissions


def refused(*errors: type) -> Expect:
    return Expect(frozenset(errors))


def expect(call: Call, model: Model) -> Expect:
    """What API.md says this call does in the model's state; on success the model is updated."""
    op = call.op
    if isinstance(op, Submit):
        errors = set()
        if not can(call.by, Role.SERVICE, Role.ADMIN):
            errors.add(Forbidden)
        if op.severity and op.score is not None and score_severity(op.score) != op.severity:
            errors.add(BadUserInput)
        if errors:
            return refused(*errors)
        if op.key in model.patches:
            return Expect(frozenset(), audit=0, created=False)
        severity = op.severity or score_severity(op.score)
        patch = MPatch(op.key, None, ACTORS[call.by].subject, severity, op.priority or severity, op.bump, op.wide, op.prediction, op.wargaming)
        model.patches[op.key] = patch
        if patch.auto_approvable() and not model.paused:
            patch.status, patch.version, patch.decided_by = "AUTO_APPROVED", 2, AUTO_APPROVAL_ACTOR
            return Expect(frozenset(), audit=2, created=True)
        return Expect(frozenset(), audit=1, created=True)
    if isinstance(op, Pause):
        if not can(call.by, Role.ADMIN):
            return refused(Forbidden)
        model.paused = op.paused
        return Expect(frozenset(), audit=1)
    if isinstance(op, SlaSweep):
        for patch in model.ordered():
            if patch.status in OPEN and patch.priority != "LOW" and not patch.breached:
                patch.breached, patch.version = True, patch.version + 1
                if op.escalate and patch.status == "PENDING":
                    patch.status = "ESCALATED"
        return Expect(frozenset(), audit=None)

    patch = model.by_id(call.patch_id)
    errors: set[type] = set()
    if patch is None:
        errors.add(NotFound)
    if isinstance(op, Wargaming):
        if not can(call.by, Role.SERVICE, Role.ADMIN):
            errors.add(Forbidden)
        if patch and patch.status in FINAL:
            errors.add(Conflict)
        if errors:
            return refused(*errors)
        patch.wargaming, patch.version = (op.phase1, op.validation), patch.version + 1
        if patch.auto_approvable() and not model.paused:
            patch.status, patch.version, patch.decided_by = "AUTO_APPROVED", patch.version + 1, AUTO_APPROVAL_ACTOR
            return Expect(frozenset(), audit=2)
        return Expect(frozenset(), audit=1)
    if isinstance(op, Outcome):
        if not can(call.by, Role.SERVICE, Role.ADMIN):
            errors.add(Forbidden)
        if patch and (patch.status not in APPROVED or patch.outcome is not None):
            errors.add(Conflict)
        if errors:
            return refused(*errors)
        patch.outcome, patch.version = op.success, patch.version + 1
        return Expect(frozenset(), audit=1)
    if isinstance(op, AddComment):
        if not can(call.by, Role.REVIEWER, Role.LEAD, Role.ADMIN):
            errors.add(Forbidden)
        if op.blank:
            errors.add(BadUserInput)
        if patch and patch.requires_escalation and patch.status in OPEN and not can(call.by, Role.LEAD, Role.ADMIN):
            errors.add(Forbidden)
        if patch and call.parent_id is not None and call.parent_id not in patch.comments:
            errors.add(BadUserInput)
        if errors:
            return refused(*errors)
        patch.comments.append(None)  # the id is filled in from the result
        return Expect(frozenset(), audit=1)

    assert isinstance(op, Decide)
    needed = {"approve": (Role.REVIEWER, Role.LEAD, Role.ADMIN), "reject": (Role.REVIEWER, Role.LEAD, Role.ADMIN),
              "escalate": (Role.REVIEWER, Role.LEAD, Role.ADMIN), "cancel": (Role.LEAD, Role.ADMIN, Role.SERVICE)}  # fmt: skip
    if not can(call.by, *needed[op.kind]):
        errors.add(Forbidden)
    if op.blank and op.kind != "approve":
        errors.add(BadUserInput)
    lead = can(call.by, Role.LEAD, Role.ADMIN)
    if patch is not None:
        allowed_from = {"PENDING"} if op.kind == "escalate" else OPEN
        if patch.status not in allowed_from:
            errors.add(Conflict)
        if call.expected_version is not None and call.expected_version != patch.version:
            errors.add(Conflict)
        if op.kind in ("approve", "reject") and (patch.requires_escalation or patch.status == "ESCALATED") and not lead:
            errors.add(Forbidden)
        if op.kind == "escalate" and patch.requires_escalation and not lead:
            errors.add(Forbidden)
        if op.kind == "approve" and ACTORS[call.by].subject == patch.submitter:
            errors.add(Forbidden)
        if op.kind == "approve" and ACTORS[call.by].subject in patch.approvals:
            errors.add(Conflict)
    if errors:
        return refused(*errors)
    subject = ACTORS[call.by].subject
    patch.version += 1
    if op.kind == "approve":
        patch.approvals.append(subject)
        if len(patch.approvals) >= patch.required:
            patch.status, patch.decided_by = "APPROVED", subject
    elif op.kind == "escalate":
        patch.status = "ESCALATED"
    else:
        patch.status, patch.decided_by = ("REJECTED" if op.kind == "reject" else "CANCELLED"), subject
    return Expect(frozenset(), audit=1)


# ---------------------------------------------------------------------------------------------------
# Running a call through the services


@dataclass
class Result:
    error: DomainError | None = None
    value: object = None


async def run(call: Call, db, model_prefix: str) -> Result:
    op = call.op
    try:
        async with db.write() as session:
            if isinstance(op, Submit):
                current = "2.31.0"
                target = {"PATCH": "2.31.1", "MINOR": "2.32.0", "MAJOR": "3.0.0"}[op.bump]
                data = SubmitPatchData(
                    patch_id=f"{model_prefix}-P{op.key}",
                    apv_id=f"APV-{model_prefix}-{op.key}",
                    package_name="requests",
                    current_version=current,
                    target_version=target,
                    severity=op.severity,
                    cvss_score=op.score,
                    priority=op.priority,
                    affected_systems=[f"sys-{i}" for i in range(10 if op.wide else 1)],
                    ml_prediction=PredictionData("upstream-1", op.prediction[0], op.prediction[1]) if op.prediction else None,
                    wargaming=WargamingData(op.wargaming[0], True, op.wargaming[1], 1000) if op.wargaming else None,
                )
                value = await submission.submit(session=session, actor=ACTORS[call.by], data=data, policy=POLICY)
            elif isinstance(op, Pause):
                value = await auto_approval.set_paused(session=session, actor=ACTORS[call.by], paused=op.paused, reason="property test")
            elif isinstance(op, SlaSweep):
                policy = SLA_ESCALATING if op.escalate else POLICY
                value = await sla.mark_breaches(session=session, policy=policy, now=utcnow() + timedelta(hours=2), limit=100_000)
            elif isinstance(op, Wargaming):
                data = WargamingData(op.phase1, True, op.validation, 1000)
                value = await submission.record_wargaming(
                    session=session, actor=ACTORS[call.by], patch_id=str(call.patch_id), data=data, policy=POLICY
                )
            elif isinstance(op, Outcome):
                value = await decisions.record_outcome(session=session, actor=ACTORS[call.by], patch_id=str(call.patch_id), success=op.success)
            elif isinstance(op, AddComment):
                value = await comments.add(
                    session=session,
                    actor=ACTORS[call.by],
                    patch_id=str(call.patch_id),
                    body="  " if op.blank else f"note by {call.by}",
                    parent_id=str(call.parent_id) if call.parent_id else None,
                )
            else:
                actor, pid, reason = ACTORS[call.by], str(call.patch_id), " " if op.blank else f"{op.kind} by {call.by}"
                if op.kind == "approve":
                    value = await decisions.approve(session=session, actor=actor, patch_id=pid, expected_version=call.expected_version)
                elif op.kind == "reject":
                    value = await decisions.reject(
                        session=session, actor=actor, patch_id=pid, reason=reason, expected_version=call.expected_version
                    )
                elif op.kind == "escalate":
                    value = await decisions.escalate(
                        session=session, actor=actor, patch_id=pid, reason=reason, expected_version=call.expected_version
                    )
                else:
                    value = await decisions.cancel(session=session, actor=actor, patch_id=pid, reason=reason)
    except DomainError as error:
        return Result(error=error)
    return Result(value=value)


def _expected(exp: "Expect") -> str:
    return "success" if not exp.errors else " or ".join(sorted(error.__name__ for error in exp.errors))


def describe(result: Result) -> str:
    if result.error is not None:
        return f"{type(result.error).__name__}({result.error.message!r})"
    return "ok"


def matches(exp: Expect, result: Result) -> bool:
    if exp.errors:
        return result.error is not None and type(result.error) in exp.errors
    if result.error is not None:
        return False
    return exp.created is None or result.value[1] is exp.created


def adopt(call: Call, model: Model, exp: Expect, result: Result) -> None:
    """Fill in what only the service knows (new ids) after a successful call."""
    if exp.errors:
        return
    if isinstance(call.op, Submit) and exp.created:
        model.patches[call.op.key].id = result.value[0].id
    if isinstance(call.op, AddComment):
        model.by_id(call.patch_id).comments[-1] = result.value.id


# ---------------------------------------------------------------------------------------------------
# Reading the database


SNAPSHOT_KEYS = ("rows", "approvals", "approvals_total", "comments_total", "paused", "audit_head")


async def snapshot(db, ids: list[uuid.UUID]) -> dict:
    """The example's rows, approvals, comments and audit trails, and the global counters, in one read.

    The keys of SNAPSHOT_KEYS are everything a refused call must leave untouched."""
    async with db.read() as session:
        rows = (await session.exec(select(Patch).where(Patch.id.in_(ids)))).all() if ids else []
        approvals = (
            await session.exec(select(Approval.patch_id, Approval.approver).where(Approval.patch_id.in_(ids)).order_by(Approval.id))
        ).all() if ids else []  # fmt: skip
        comment_counts = (
            await session.exec(select(Comment.patch_id, func.count()).where(Comment.patch_id.in_(ids)).group_by(Comment.patch_id))
        ).all() if ids else []  # fmt: skip
        entries = (
            await session.exec(select(AuditEntry).where(AuditEntry.decision_id.in_(ids)).order_by(AuditEntry.seq))
        ).all() if ids else []  # fmt: skip
        approvals_total, comments_total, head, paused = (
            await session.exec(
                text(
                    "SELECT (SELECT COUNT(*) FROM approvals), (SELECT COUNT(*) FROM comments),"
                    " (SELECT COALESCE(MAX(seq), 0) FROM audit_log),"
                    " (SELECT value FROM service_state WHERE key = 'auto_approval')"
                )
            )
        ).one()
    paused = bool((json.loads(paused) if isinstance(paused, str) else paused or {}).get("paused"))
    return {
        "rows": {row.id: row.model_dump() for row in rows},
        "approvals": [tuple(a) for a in approvals],
        "approvals_total": approvals_total,
        "comments_total": comments_total,
        "paused": paused,
        "audit_head": head,
        "objects": list(rows),
        "comment_counts": dict(comment_counts),
        "entries": list(entries),
    }


def unchanged(before: dict, after: dict) -> bool:
    return all(before[key] == after[key] for key in SNAPSHOT_KEYS)


def snapshot_problems(snap: dict) -> list[str]:
    """Replay the example's trails (from a snapshot) against its rows."""
    trails: dict[uuid.UUID, list[AuditEntry]] = {}
    for entry in snap["entries"]:
        trails.setdefault(entry.decision_id, []).append(entry)
    approvers: dict[uuid.UUID, list[str]] = {}
    for patch_id, approver in snap["approvals"]:
        approvers.setdefault(patch_id, []).append(approver)
    problems = []
    for row in snap["objects"]:
        problems += replay(row, trails.get(row.id, []), approvers.get(row.id, []), snap["comment_counts"].get(row.id, 0))
    return problems


def compare_model(model: Model, snap: dict) -> list[str]:
    problems = []
    approvals: dict[uuid.UUID, list[str]] = {}
    for patch_id, approver in snap["approvals"]:
        approvals.setdefault(patch_id, []).append(approver)
    for mp in model.ordered():
        row = snap["rows"].get(mp.id)
        if row is None:
            problems.append(f"P{mp.key}: row missing")
            continue
        got = {
            "status": row["status"],
            "version": row["version"],
            "approvers": sorted(approvals.get(mp.id, [])),
            "severity": row["severity"],
            "priority": row["priority"],
            "required_approvals": row["required_approvals"],
            "requires_escalation": row["requires_escalation"],
            "deployment_outcome": row["deployment_outcome"],
            "sla_breached": row["sla_breached_at"] is not None,
            "decided_by": row["decided_by"],
            "submitted_by": row["submitted_by"],
        }
        want = {
            "status": mp.status,
            "version": mp.version,
            "approvers": sorted(mp.approvals),
            "severity": mp.severity,
            "priority": mp.priority,
            "required_approvals": mp.required,
            "requires_escalation": mp.requires_escalation,
            "deployment_outcome": mp.outcome,
            "sla_breached": mp.breached,
            "decided_by": mp.decided_by,
            "submitted_by": mp.submitter,
        }
        diff = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
        if diff:
            problems.append(f"P{mp.key} ({mp.id}): model vs row (want, got): {diff}")
    if snap["paused"] != model.paused:
        problems.append(f"pause: model {model.paused}, database {snap['paused']}")
    return problems


def replay(patch: Patch, trail: list[AuditEntry], approvers: list[str], n_comments: int) -> list[str]:
    """Rebuild a patch from its audit trail alone; the row must agree, with at most one final decision."""
    problems: list[str] = []
    where = f"patch {patch.patch_id} ({patch.id}) trail {[e.action for e in trail]}"

    def check(condition: bool, message: str) -> None:
        if not condition:
            problems.append(f"{where}: {message}")

    if not trail or trail[0].action != "SUBMITTED":
        return [f"{where}: does not start with SUBMITTED"]
    status, version, approved_by, outcome, breaches, commented, finals = None, 0, [], None, 0, 0, 0
    for entry in trail:
        action = entry.action
        if action == "SUBMITTED":
            check(status is None, "SUBMITTED twice")
            status, version = "PENDING", 1
        elif action == "COMMENTED":
            commented += 1
            continue  # comments do not change the patch
        else:
            version += 1
            check(status not in FINAL or action == "OUTCOME_RECORDED", f"{action} after the final {status}")
            if action in ("APPROVAL_RECORDED", "APPROVED"):
                check(status in OPEN, f"{action} on a {status} patch")
                approved_by.append(entry.actor)
                if action == "APPROVED":
                    status = "APPROVED"
            elif action in ("REJECTED", "CANCELLED"):
                check(status in OPEN, f"{action} on a {status} patch")
                status = action
            elif action == "AUTO_APPROVED":
                check(status == "PENDING" and entry.actor == AUTO_APPROVAL_ACTOR, f"AUTO_APPROVED from {status} by {entry.actor}")
                status = "AUTO_APPROVED"
            elif action == "ESCALATED":
                check(status == "PENDING", f"ESCALATED from {status}")
                status = "ESCALATED"
            elif action == "WARGAMING_RECORDED":
                check(status in OPEN, f"wargaming recorded on a {status} patch")
            elif action == "SLA_BREACHED":
                check(status in OPEN, f"SLA breach on a {status} patch")
                breaches += 1
                if entry.details.get("escalated"):
                    check(status == "PENDING", "SLA escalation of a non-pending patch")
                    status = "ESCALATED"
            elif action == "OUTCOME_RECORDED":
                check(status in APPROVED and outcome is None, f"outcome on a {status} patch (previous outcome {outcome})")
                outcome = entry.details.get("success")
            else:
                check(False, f"unknown action {action}")
            if action in FINAL_EVENTS:
                finals += 1
        check(entry.details.get("status") == status, f"seq {entry.seq}: details.status {entry.details.get('status')} != {status}")
        check(entry.details.get("version") == version, f"seq {entry.seq}: details.version {entry.details.get('version')} != {version}")
    check(finals <= 1, f"{finals} final decisions")
    check((finals == 1) == (patch.status in FINAL), f"{finals} final decisions for status {patch.status}")
    check(patch.status == status, f"row status {patch.status}, history says {status}")
    check(patch.version == version, f"row version {patch.version}, history says {version}")
    check(patch.deployment_outcome == outcome, f"row outcome {patch.deployment_outcome}, history says {outcome}")
    check(breaches <= 1 and (patch.sla_breached_at is not None) == (breaches == 1), f"{breaches} SLA breaches, flag {patch.sla_breached_at}")
    check(sorted(approvers) == sorted(approved_by), f"approvals {sorted(approvers)}, history says {sorted(approved_by)}")
    check(len(set(approvers)) == len(approvers), f"duplicate approver in {approvers}")
    check(patch.submitted_by not in approvers, f"submitter {patch.submitted_by} approved")
    if patch.status == "APPROVED":
        check(len(approvers) >= patch.required_approvals, f"APPROVED with {len(approvers)}/{patch.required_approvals} approvals")
    if patch.status in OPEN:
        check(len(approvers) < patch.required_approvals, f"still {patch.status} with {len(approvers)} approvals")
    check((patch.decided_by is not None) == (patch.status in FINAL), f"decided_by {patch.decided_by} on a {patch.status} patch")
    check((patch.decided_at is not None) == (patch.status in FINAL), f"decided_at {patch.decided_at} on a {patch.status} patch")
    check(n_comments == commented, f"{n_comments} comments, {commented} COMMENTED events")
    check(patch.priority_rank == PRIORITY_RANK[Priority(patch.priority)], f"priority_rank {patch.priority_rank} for {patch.priority}")
    return problems


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    return sorted(values)[max(math.ceil(0.95 * len(values)) - 1, 0)]


def _same(got: float | None, want: float | None) -> bool:
    if got is None or want is None:
        return got is None and want is None
    return math.isclose(got, want, abs_tol=0.01)


@dataclass
class Start:
    """Where the database stood when an example began (so an example is blamed only for its own changes)."""

    since: object
    audit_head: int
    chain_valid: bool


async def start_of_example(db) -> Start:
    async with db.read() as session:
        report = await audit.verify_chain(session=session)
        head = await audit.head_seq(session=session)
    return Start(since=utcnow(), audit_head=head, chain_valid=report.valid)


async def global_problems(db, model: Model, start: Start) -> list[str]:
    """After a program: the chain, the analytics summary and the pending queue against the tables."""
    problems = []
    now = utcnow()
    ids = [p.id for p in model.ordered()]
    async with db.read() as session:
        report = await audit.verify_chain(session=session)
        n_entries = (await session.exec(text("SELECT COUNT(*) FROM audit_log"))).one()[0]
        new_entries = (await session.exec(select(AuditEntry).where(AuditEntry.seq >= start.audit_head).order_by(AuditEntry.seq))).all()
        known = set((await session.exec(select(Patch.id).where(Patch.id.in_({e.decision_id for e in new_entries})))).all())
        by_status = dict((await session.exec(text("SELECT status, COUNT(*) FROM patches GROUP BY status"))).all())
        summary = await analytics.summary(session=session, now=now)
        window = await analytics.summary(session=session, since=start.since, now=now)
        rows = (await session.exec(select(Patch).where(Patch.id.in_(ids)))).all()
        open_rows = (await session.exec(select(Patch).where(Patch.status.in_(sorted(OPEN))))).all()
        queued, after = [], None
        while True:
            page = await queue.pending_page(session=session, first=4, after=after, now=now)
            queued += page.items
            if not page.has_next_page:
                break
            after = page.end_cursor
        n_pending = await queue.pending_count(session=session)

    # The hash chain, as verifyAuditChain reports it, covers every row. If an earlier (failed) example
    # already broke it, this example's own entries are checked link by link instead.
    if start.chain_valid:
        if not (report.valid and report.entries_checked == n_entries):
            problems.append(f"audit chain: {report} over {n_entries} rows")
    for previous, entry in itertools.pairwise(new_entries):
        if entry.seq != previous.seq + 1 or entry.prev_hash != previous.hash or entry.hash != audit.entry_hash(entry.prev_hash, entry):
            problems.append(f"audit entry {entry.seq} does not chain to {previous.seq}")
    for entry in new_entries[1:] if start.audit_head else new_entries:
        if entry.decision_id == SYSTEM_DECISION_ID:
            if entry.action not in {action.value for action in SystemAction}:
                problems.append(f"system audit entry {entry.seq} has action {entry.action}")
        elif entry.decision_id not in known:
            problems.append(f"audit entry {entry.seq} ({entry.action}) names no patch: {entry.decision_id}")

    # Analytics over the whole table: the summary's counts are what SQL counts.
    count = lambda s: int(by_status.get(s, 0))  # noqa: E731
    decided = count("APPROVED") + count("REJECTED") + count("AUTO_APPROVED")
    want = {
        "total_patches": sum(int(v) for v in by_status.values()),
        "pending": count("PENDING"),
        "approved": count("APPROVED"),
        "rejected": count("REJECTED"),
        "auto_approved": count("AUTO_APPROVED"),
        "escalated": count("ESCALATED"),
        "cancelled": count("CANCELLED"),
        "auto_approval_rate": count("AUTO_APPROVED") / decided if decided else 0.0,
        "rejection_rate": count("REJECTED") / decided if decided else 0.0,
    }
    problems += [f"analytics {k}: summary {getattr(summary, k)}, table {v}" for k, v in want.items() if not _same(getattr(summary, k), v)]

    # Analytics windowed on this example: every figure, recomputed from the example's rows (and the model).
    human = [(r.decided_at - r.created_at).total_seconds() for r in rows if r.status in ("APPROVED", "REJECTED") and r.decided_at]
    agreements = [r.ml_wargaming_agreement for r in rows if r.ml_wargaming_agreement is not None]
    labelled = [r.deployment_outcome for r in rows if r.status == "AUTO_APPROVED" and r.deployment_outcome is not None]
    statuses = [p.status for p in model.ordered()]
    n = lambda s: statuses.count(s)  # noqa: E731
    decided = n("APPROVED") + n("REJECTED") + n("AUTO_APPROVED")
    want = {
        "total_patches": len(statuses),
        "pending": n("PENDING"),
        "approved": n("APPROVED"),
        "rejected": n("REJECTED"),
        "auto_approved": n("AUTO_APPROVED"),
        "escalated": n("ESCALATED"),
        "cancelled": n("CANCELLED"),
        "auto_approval_rate": n("AUTO_APPROVED") / decided if decided else 0.0,
        "rejection_rate": n("REJECTED") / decided if decided else 0.0,
        "sla_breaches": sum(
            1 for r in rows if r.sla_deadline is not None and (r.sla_breached_at is not None or r.sla_deadline < (r.decided_at or now))
        ),
        "ml_accuracy": sum(agreements) / len(agreements) if agreements else None,
        "auto_approval_precision": sum(labelled) / len(labelled) if labelled else None,
        "avg_decision_time_seconds": sum(human) / len(human) if human else None,
        "p95_decision_time_seconds": _p95(human),
    }
    problems += [
        f"analytics since the example began, {k}: summary {getattr(window, k)}, expected {v}"
        for k, v in want.items()
        if not _same(getattr(window, k), v)
    ]

    # The queue: exactly the open patches, CRITICAL..LOW, oldest first, then id; no repeats across pages.
    expected = sorted(open_rows, key=lambda r: (PRIORITY_RANK[Priority(r.priority)], r.created_at, r.id))
    if [p.id for p in queued] != [r.id for r in expected]:
        problems.append(
            f"pending queue {[(p.patch_id, p.status, p.priority) for p in queued]} != "
            f"open patches in queue order {[(r.patch_id, r.status, r.priority) for r in expected]}"
        )
    if n_pending != len(expected) or page.total_count != len(expected) or count("PENDING") + count("ESCALATED") != len(expected):
        problems.append(f"pending count {n_pending}, page total {page.total_count}, open rows {len(expected)}")
    return problems


class Program:
    def __init__(self, db, before: dict) -> None:
        self.db = db
        self.before = before  # the snapshot after the previous step
        self.steps_run = 0

    async def step(self, number: int, op: object, model: Model) -> None:
        before = self.before
        if isinstance(op, Race):
            after = await self.race(number, op, model, before)
        else:
            call = resolve(op, model)
            exp = expect(call, model)
            result = await run(call, self.db, model.prefix)
            note(f"step {number}: {op!r}{f' [{call.by}]' if getattr(op, 'by', None) == 'owner' else ''} -> {describe(result)}")
            event(f"{_kind(op)} -> {type(result.error).__name__ if result.error else 'ok'}")
            assert matches(exp, result), (
                f"step {number}: {op!r}: expected "
                f"{'success' if not exp.errors else ' or '.join(sorted(e.__name__ for e in exp.errors))}"
                f"{'' if exp.created is None else f' (created={exp.created})'}, got {describe(result)}"
                f"{'' if result.error or exp.created is None else f' (created={result.value[1]})'}"
            )
            adopt(call, model, exp, result)
            after = await snapshot(self.db, [p.id for p in model.ordered()])
            if exp.errors:
                assert unchanged(before, after), f"step {number}: the refused {op!r} changed the database: {_diff(before, after)}"
            else:
                written = len(result.value) if isinstance(op, SlaSweep) else exp.audit
                assert after["audit_head"] - before["audit_head"] == written, (
                    f"step {number}: {op!r} appended {after['audit_head'] - before['audit_head']} audit entries, expected {written}"
                )
                if isinstance(op, SlaSweep):
                    swept = {p.id for p in result.value if model.by_id(p.id)}
                    due = {i for i, row in before["rows"].items()
                           if row["status"] in OPEN and row["priority"] != "LOW" and row["sla_breached_at"] is None}  # fmt: skip
                    assert swept == due, f"step {number}: the sweep flagged {swept}, due were {due}"
            problems = compare_model(model, after)
            assert not problems, f"step {number}: {op!r}:\n  " + "\n  ".join(problems)
        problems = snapshot_problems(after)
        assert not problems, f"step {number}: after {op!r}:\n  " + "\n  ".join(problems)
        self.before = after
        self.steps_run += 1

    async def race(self, number: int, op: Race, model: Model, before: dict) -> dict:
        calls = [resolve(op.first, model), resolve(op.second, model)]
        results = await asyncio.gather(*(run(call, self.db, model.prefix) for call in calls))
        note(f"step {number}: {op!r} -> {describe(results[0])} || {describe(results[1])}")
        event(f"race -> {sorted(type(r.error).__name__ if r.error else 'ok' for r in results)}")
        created = [r.value[0].id for c, r in zip(calls, results) if isinstance(c.op, Submit) and r.error is None]
        after = await snapshot(self.db, list(dict.fromkeys([p.id for p in model.ordered()] + created)))
        tried = []
        for order in ((0, 1), (1, 0)):  # the outcome must be that of one serial order
            candidate = copy.deepcopy(model)
            exps = {index: expect(calls[index], candidate) for index in order}
            if all(matches(exps[index], results[index]) for index in order):
                for index in order:
                    adopt(calls[index], candidate, exps[index], results[index])
                problems = compare_model(candidate, after)
                written = sum(exps[i].audit for i in exps if not exps[i].errors)
                if after["audit_head"] - before["audit_head"] != written:
                    problems.append(f"{after['audit_head'] - before['audit_head']} audit entries, expected {written}")
                if not problems:
                    model.__dict__.update(candidate.__dict__)
                    return after
            else:
                problems = [f"expected {' then '.join(_expected(exps[index]) for index in order)}"]
            tried.append(f"{' then '.join(repr(calls[index].op) for index in order)}: {problems}")
        raise AssertionError(
            f"step {number}: {op!r} -> {describe(results[0])} || {describe(results[1])} matches no serial order: {tried}"
        )


def _kind(op: object) -> str:
    kind = op.kind if isinstance(op, Decide) else type(op).__name__
    return f"{kind} by owner" if getattr(op, "by", None) == "owner" else kind


def _diff(before: dict, after: dict) -> dict:
    out = {k: (before[k], after[k]) for k in SNAPSHOT_KEYS if k != "rows" and before[k] != after[k]}
    for key, row in before["rows"].items():
        changed = {c: (row[c], after["rows"].get(key, {}).get(c)) for c in row if row[c] != after["rows"].get(key, {}).get(c)}
        if changed:
            out[str(key)] = changed
    return out


_examples = itertools.count(1)


@pytest.fixture(autouse=True)
def _bounded_shrinking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hypothesis_engine, "MAX_SHRINKING_SECONDS", SHRINK_SECONDS)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if SHRINK else []),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(program=programs)
async def test_any_sequence_of_operations_keeps_the_invariants(database, program):
    start = await start_of_example(database)
    async with database.read() as session:
        paused = (await auto_approval.pause_state(session=session)).paused
    model = Model(prefix=f"HYP{next(_examples)}", paused=paused)
    runner = Program(database, await snapshot(database, []))
    note(f"example {model.prefix} on {database.dialect}, auto-approval paused: {paused}, audit head {start.audit_head}")
    for number, op in enumerate(program, 1):
        await runner.step(number, op, model)
    problems = await global_problems(database, model, start)
    assert not problems, "after the whole program:\n  " + "\n  ".join(problems)
    event(f"program length {len(program) // 5 * 5}-{len(program) // 5 * 5 + 4}")
    for status in sorted({p.status for p in model.ordered()}):
        event(f"reached {status}")
    # Clean up through the service (checked like any step): the next example starts with an empty queue.
    for index, patch in enumerate(model.ordered()):
        if patch.status in OPEN:
            await runner.step(len(program) + 1 + index, Decide("cancel", "lena", index), model)


# ---------------------------------------------------------------------------------------------------
# Regressions found by the programs above


async def _set_paused(db, paused: bool) -> auto_approval.PauseState:
    async with db.write() as session:
        return await auto_approval.set_paused(session=session, actor=ACTORS["adam"], paused=paused, reason="incident")


@pytest.mark.postgres_only
async def test_pausing_while_evidence_auto_approves_does_not_deadlock(pg_database):
    """Found as concurrently[resume(by adam) || wargaming(...)] -> DeadlockDetectedError on PostgreSQL.

    An auto-approval appends its evidence (taking the audit lock) and then reads the pause under a share
    lock on service_state; set_paused locked service_state first and then waited for the audit lock.
    Interleaved, PostgreSQL aborted one of them as a deadlock (an INTERNAL_SERVER_ERROR for the caller).
    Here one transaction composes two service calls so that the pause arrives exactly in between."""
    db = pg_database
    async with db.write() as session:
        data = SubmitPatchData("PATCH-DEADLOCK", "APV-1", "requests", "2.31.0", "2.31.1", severity="HIGH",
                               ml_prediction=PredictionData("upstream-1", 0.99, True))  # fmt: skip
        patch, _ = await submission.submit(session=session, actor=ACTORS["svc"], data=data, policy=POLICY)
    assert patch.status == "PENDING"
    async with db.write() as session:
        await comments.add(session=session, actor=ACTORS["lena"], patch_id=str(patch.id), body="checking")  # holds the audit lock
        pausing = asyncio.create_task(_set_paused(db, True))
        await asyncio.sleep(0.5)  # the pause is now waiting for this transaction
        assert not pausing.done()
        evidence = WargamingData(True, True, True, 1000)
        patch = await submission.record_wargaming(session=session, actor=ACTORS["svc"], patch_id=str(patch.id), data=evidence, policy=POLICY)
    state = await asyncio.wait_for(pausing, timeout=10)
    assert patch.status == "AUTO_APPROVED" and state.paused  # serialized: the auto-approval, then the pause
    async with db.read() as session:
        assert (await audit.verify_chain(session=session)).valid
