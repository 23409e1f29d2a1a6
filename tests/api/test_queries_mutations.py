"""Every query and mutation of API.md over real HTTP."""

import asyncio
import uuid

import pytest

from db.services import audit, audit_log
from tests.support.server import ADMIN, LEAD, REVIEWER, REVIEWER2, SERVICE, SUBMIT, VIEWER, patch_input, submit, token

PATCH_FIELDS = "id status version decidedBy reason comment deploymentOutcome approvals { approver comment } comments { body parentId } auditTrail { seq action actor ipAddress userAgent }"


async def test_lifecycle_through_every_mutation(api):
    created = await api.gql(
        """mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { created patch { id status severity cvssScore priority } } }""",
        {"i": {"patchId": "P-1", "apvId": "A-1", "packageName": "openssl", "currentVersion": "3.0.1", "targetVersion": "3.0.2",
               "cvssVector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
        as_=SERVICE,
    )
    patch = created["data"]["submitPatch"]["patch"]
    assert created["data"]["submitPatch"]["created"] and (patch["severity"], patch["cvssScore"], patch["priority"]) == ("CRITICAL", 9.8, "CRITICAL")
    again = await api.gql("""mutation { submitPatch(input: {patchId: "P-1", apvId: "x", packageName: "y", currentVersion: "1", targetVersion: "2", severity: LOW}) { created patch { id } } }""", as_=SERVICE)
    assert again["data"]["submitPatch"] == {"created": False, "patch": {"id": patch["id"]}}

    pid = patch["id"]
    wargaming = await api.gql(
        """mutation($id: ID!) { recordWargamingResult(id: $id, input: {phase1Success: true, phase2Success: true, validationPassed: true, executionTimeMs: 900, exploitId: "E1"}) { version wargaming { validationPassed exploitId } } }""",
        {"id": pid}, as_=SERVICE,
    )
    assert wargaming["data"]["recordWargamingResult"] == {"version": 2, "wargaming": {"validationPassed": True, "exploitId": "E1"}}
    comment = await api.gql("""mutation($id: ID!) { addComment(id: $id, body: "Checked the changelog") { id author body parentId } }""", {"id": pid}, as_=REVIEWER)
    root = comment["data"]["addComment"]
    reply = await api.gql("""mutation($id: ID!, $p: ID) { addComment(id: $id, body: "Thanks", parentId: $p) { parentId } }""", {"id": pid, "p": root["id"]}, as_=LEAD)
    assert root["author"] == "rita" and reply["data"]["addComment"]["parentId"] == root["id"]

    first = await api.gql("""mutation($id: ID!) { approvePatch(id: $id, comment: "lgtm", expectedVersion: 2) { status version } }""", {"id": pid}, as_=REVIEWER)
    assert first["data"]["approvePatch"] == {"status": "PENDING", "version": 3}
    second = await api.gql(f"""mutation($id: ID!) {{ approvePatch(id: $id) {{ {PATCH_FIELDS} }} }}""", {"id": pid}, as_=REVIEWER2)
    done = second["data"]["approvePatch"]
    assert done["status"] == "APPROVED" and done["decidedBy"] == "rob" and [a["approver"] for a in done["approvals"]] == ["rita", "rob"]
    assert [e["action"] for e in done["auditTrail"]] == ["SUBMITTED", "WARGAMING_RECORDED", "COMMENTED", "COMMENTED", "APPROVAL_RECORDED", "APPROVED"]
    assert done["auditTrail"][-1]["ipAddress"] == "127.0.0.1" and done["auditTrail"][-1]["userAgent"].startswith("python-httpx")

    outcome = await api.gql("""mutation($id: ID!) { recordDeploymentOutcome(id: $id, success: true, details: "rolled out") { deploymentOutcome version } }""", {"id": pid}, as_=SERVICE)
    assert outcome["data"]["recordDeploymentOutcome"] == {"deploymentOutcome": True, "version": 5}

    other = await submit(api, 2)
    escalated = await api.gql("""mutation($id: ID!) { escalatePatch(id: $id, reason: "needs a lead") { status reason } }""", {"id": other["id"]}, as_=REVIEWER)
    assert escalated["data"]["escalatePatch"] == {"status": "ESCALATED", "reason": "needs a lead"}
    rejected = await api.gql("""mutation($id: ID!) { rejectPatch(id: $id, reason: "breaks auth", comment: "see logs") { status reason comment decidedBy } }""", {"id": other["id"]}, as_=LEAD)
    assert rejected["data"]["rejectPatch"] == {"status": "REJECTED", "reason": "breaks auth", "comment": "see logs", "decidedBy": "lena"}
    third = await submit(api, 3)
    cancelled = await api.gql("""mutation($id: ID!) { cancelPatch(id: $id, reason: "superseded") { status } }""", {"id": third["id"]}, as_=SERVICE)
    assert cancelled["data"]["cancelPatch"]["status"] == "CANCELLED"


async def test_queries(api):
    a = await submit(api, 1, severity="LOW")
    b = await submit(api, 2, severity="CRITICAL", targetVersion="2.31.1")
    await api.gql("""mutation($id: ID!) { rejectPatch(id: $id, reason: "no") { id } }""", {"id": a["id"]}, as_=REVIEWER)
    body = await api.gql(
        """query($id: ID!) {
          patch(id: $id) { patchId }
          missing: patch(id: "00000000-0000-0000-0000-000000000001") { id }
          patchByPatchId(patchId: "P-2") { id }
          pendingPatches(first: 10, filter: {priority: [CRITICAL]}) { totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor } }
          patches(filter: {status: [REJECTED]}) { totalCount edges { node { id decidedBy } } }
          analyticsSummary { totalPatches pending rejected rejectionRate autoApprovalRate mlAccuracy slaBreaches autoApprovalPrecision }
          analyticsBreakdown(interval: WEEK) { interval decisionTimes { fromSeconds toSeconds count }
            byPriority { priority total rejected rejectionRate } overTime { start submitted rejected rejectionRate } }
          auditLog(first: 2, filter: {actor: "svc-upstream"}) { totalCount edges { cursor node { seq action hash prevHash } } pageInfo { hasNextPage } }
          verifyAuditChain { valid entriesChecked firstBrokenSeq }
          mlModel { version }
          autoApprovalState { paused threshold policy autoApprovalEnabled }
          me { subject roles }
        }""",
        {"id": b["id"]},
        as_=VIEWER,
    )
    assert "errors" not in body, body
    data = body["data"]
    assert data["patch"] == {"patchId": "P-2"} and data["missing"] is None and data["patchByPatchId"] == {"id": b["id"]}
    assert data["pendingPatches"]["totalCount"] == 1 and data["pendingPatches"]["edges"][0]["node"]["id"] == b["id"]
    assert data["patches"]["edges"] == [{"node": {"id": a["id"], "decidedBy": "rita"}}]
    assert data["analyticsSummary"]["totalPatches"] == 2 and data["analyticsSummary"]["rejectionRate"] == 1.0
    breakdown = data["analyticsBreakdown"]
    assert breakdown["interval"] == "WEEK" and sum(bucket["count"] for bucket in breakdown["decisionTimes"]) == 1
    assert [row["priority"] for row in breakdown["byPriority"]] == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
    assert breakdown["byPriority"][3] == {"priority": "LOW", "total": 1, "rejected": 1, "rejectionRate": 1.0}
    assert len(breakdown["overTime"]) == 1 and breakdown["overTime"][0]["submitted"] == 2 and breakdown["overTime"][0]["rejectionRate"] == 1.0
    assert data["auditLog"]["totalCount"] == 2 and data["auditLog"]["edges"][0]["node"]["prevHash"] == "0" * 64
    assert data["verifyAuditChain"] == {"valid": True, "entriesChecked": 3, "firstBrokenSeq": None}
    assert data["mlModel"] is None and data["autoApprovalState"]["paused"] is False
    assert data["me"] == {"subject": "vera", "roles": ["VIEWER"]}


async def test_kill_switch_and_training(api):
    paused = await api.gql("""mutation { setAutoApprovalPaused(paused: true, reason: "incident 7") { paused reason changedBy autoApprovalEnabled } }""", as_=ADMIN)
    assert paused["data"]["setAutoApprovalPaused"] == {"paused": True, "reason": "incident 7", "changedBy": "adam", "autoApprovalEnabled": False}
    patch = await submit(
        api, 9,
        mlPrediction={"modelVersion": "up-1", "confidence": 0.99, "prediction": True, "shapValues": [{"feature": "f", "value": 0.1}]},
        wargaming={"phase1Success": True, "phase2Success": True, "validationPassed": True, "executionTimeMs": 10},
    )
    assert patch["status"] == "PENDING" and patch["autoApprovalEligible"]
    too_few = await api.gql("mutation { trainModel { version } }", as_=ADMIN)
    assert too_few["errors"][0]["extensions"]["code"] == "CONFLICT" and "at least" in too_few["errors"][0]["message"]


@pytest.mark.parametrize(
    ("query", "token", "code"),
    [
        ("mutation { approvePatch(id: \"00000000-0000-0000-0000-000000000009\") { id } }", REVIEWER, "NOT_FOUND"),
        ("mutation { approvePatch(id: \"nope\") { id } }", REVIEWER, "BAD_USER_INPUT"),
        ("{ pendingPatches(first: 0) { totalCount } }", VIEWER, "BAD_USER_INPUT"),
        ("{ pendingPatches(first: 501) { totalCount } }", VIEWER, "BAD_USER_INPUT"),
        ("{ pendingPatches(after: \"zzz\") { totalCount } }", VIEWER, "BAD_USER_INPUT"),
        ("{ patches(filter: {status: [BOGUS]}) { totalCount } }", VIEWER, "BAD_USER_INPUT"),
        ("{ patches(filter: {createdAfter: \"2024-01-01T00:00:00\"}) { totalCount } }", VIEWER, "BAD_USER_INPUT"),
        ("mutation { trainModel { version } }", LEAD, "FORBIDDEN"),
        ("mutation { setAutoApprovalPaused(paused: true, reason: \"x\") { paused } }", REVIEWER, "FORBIDDEN"),
        ("{ me { subject } }", None, "UNAUTHENTICATED"),
    ],
)
async def test_error_codes(api, query, token, code):
    body = await api.gql(query, as_=token)
    assert body["errors"][0]["extensions"]["code"] == code, body


async def test_conflict_carries_status_and_version(api):
    patch = await submit(api, 1)
    await api.gql("""mutation($id: ID!) { rejectPatch(id: $id, reason: "no") { id } }""", {"id": patch["id"]}, as_=REVIEWER)
    body = await api.gql("""mutation($id: ID!) { approvePatch(id: $id) { id } }""", {"id": patch["id"]}, as_=REVIEWER2)
    assert body["errors"][0]["extensions"] == {"code": "CONFLICT", "currentStatus": "REJECTED", "currentVersion": 2}
    stale = await submit(api, 2)
    body = await api.gql("""mutation($id: ID!) { approvePatch(id: $id, expectedVersion: 7) { id } }""", {"id": stale["id"]}, as_=REVIEWER)
    assert body["errors"][0]["extensions"] == {"code": "CONFLICT", "currentStatus": "PENDING", "currentVersion": 1}
    # Escalation and cancellation take expectedVersion too (the console sends it with every decision).
    for mutation, token in (("escalatePatch", REVIEWER), ("cancelPatch", LEAD)):
        body = await api.gql(f"""mutation($id: ID!) {{ {mutation}(id: $id, reason: "r", expectedVersion: 2) {{ id }} }}""", {"id": stale["id"]}, as_=token)
        assert body["errors"][0]["extensions"] == {"code": "CONFLICT", "currentStatus": "PENDING", "currentVersion": 1}
    escalated = await api.gql("""mutation($id: ID!) { escalatePatch(id: $id, reason: "r", expectedVersion: 1) { status version } }""", {"id": stale["id"]}, as_=REVIEWER)
    assert escalated["data"]["escalatePatch"] == {"status": "ESCALATED", "version": 2}
    cancelled = await api.gql("""mutation($id: ID!) { cancelPatch(id: $id, reason: "r", expectedVersion: 2) { status version } }""", {"id": stale["id"]}, as_=LEAD)
    assert cancelled["data"]["cancelPatch"] == {"status": "CANCELLED", "version": 3}


async def test_bad_input_is_rejected_and_changes_nothing(api):
    for overrides in ({"patchId": "a\u0000b"}, {"diff": "x" * (600 * 1024)}, {"cvssVector": "CVSS:3.1/AV:Z", "severity": None}):
        body = await api.gql(
            "mutation($i: SubmitPatchInput!) { submitPatch(input: $i) { created } }",
            {"i": {"patchId": "P-1", "apvId": "A", "packageName": "p", "currentVersion": "1", "targetVersion": "2", "severity": "LOW", **overrides}},
            as_=SERVICE,
        )
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and body["errors"][0]["extensions"]["field"]
    chain = await api.gql("{ verifyAuditChain { entriesChecked } patches { totalCount } }", as_=VIEWER)
    assert chain["data"] == {"verifyAuditChain": {"entriesChecked": 0}, "patches": {"totalCount": 0}}


async def test_unexpected_errors_are_masked(api, monkeypatch):
    from db.services import analytics

    async def broken(**_kwargs):
        raise RuntimeError("SELECT secret_column FROM patches WHERE password = 'hunter2'")

    monkeypatch.setattr(analytics, "summary", broken)
    response = await api.post("{ analyticsSummary { pending } }", as_=VIEWER)
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error" and error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"] == response.headers["x-request-id"]
    assert "SELECT" not in response.text and "hunter2" not in response.text and "Traceback" not in response.text


async def test_concurrent_submissions_each_get_their_own_answer_and_audit_entry(api):
    """submitPatch calls that arrive together are written together (db.group_commit): each still gets its own patch,
    its own error, its caller's audit entry, and a patchId sent twice at once is created once."""
    other_service = token("svc-other", "service")
    calls = [(n, SERVICE if n % 2 else other_service, {}) for n in range(1, 21)]
    calls += [(7, other_service, {"apvId": "APV-twin"}), (30, SERVICE, {"cveId": "CVE-nope"})]
    answers = await asyncio.gather(*(
        api.gql(SUBMIT, {"input": patch_input(n, **overrides)}, as_=caller) for n, caller, overrides in calls
    ))
    assert answers[-1]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT" and answers[-1]["data"] is None
    payloads = [answer["data"]["submitPatch"] for answer in answers[:-1]]
    assert [payload["patch"]["patchId"] for payload in payloads] == [f"P-{n}" for n, _, _ in calls[:-1]]
    assert sum(payload["created"] for payload in (payloads[6], payloads[20])) == 1
    assert payloads[6]["patch"]["id"] == payloads[20]["patch"]["id"]
    assert all(payload["created"] for k, payload in enumerate(payloads[:20]) if k != 6)
    async with api.app.state.services.db.read() as session:
        trails = await audit_log.trails(session=session, decision_ids=[uuid.UUID(p["patch"]["id"]) for p in payloads[:20]])
        assert (await audit.verify_chain(session=session)).valid
    submitters = {payload["patch"]["patchId"]: [entry.actor for entry in trails[uuid.UUID(payload["patch"]["id"])]] for payload in payloads[:20]}
    assert all(submitters[f"P-{n}"] == [("svc-upstream" if n % 2 else "svc-other")] for n in range(1, 21) if n != 7)
    assert submitters["P-7"] in (["svc-upstream"], ["svc-other"])
