"""Patch groups over GraphQL against a real server on both backends: queries, decideGroup, submitPatches,
pendingGroups, metrics."""

from tests.support.server import ADMIN, LEAD, REVIEWER, SERVICE, VIEWER, patch_input
from tests.support.wsclient import connect

FIX = {"cveId": "CVE-2024-6387", "packageName": "openssh-server", "currentVersion": "9.7p1", "targetVersion": "9.8p1"}
SUBMIT_MANY = """mutation($inputs: [SubmitPatchInput!]!) { submitPatches(inputs: $inputs) { created patch { id patchId status } } }"""
GROUPS = """query($first: Int, $after: String) { patchGroups(first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { cursor node { key cveId packageName targetVersion size pendingCount highestPriority statusCounts requiresEscalationCount
    members(first: 2) { totalCount edges { node { patchId } } } } } } }"""
DECIDE = """mutation($key: String!, $decision: GroupDecision!, $reason: String, $expected: [ID!]) {
  decideGroup(key: $key, decision: $decision, reason: $reason, expectedMemberIds: $expected) {
    group { key pendingCount statusCounts } applied { patchId status } skipped { code message patch { patchId } } } }"""
LIVE = "subscription { pendingGroups(first: 5) { totalCount asOfSeq items { key pendingCount highestPriority } } }"


async def _submit_many(api, inputs, as_=SERVICE):
    return await api.gql(SUBMIT_MANY, {"inputs": inputs}, as_=as_)


async def test_submit_patches_and_decide_a_group(api):
    inputs = [patch_input(n, **FIX, severity="HIGH") for n in range(4)] + [patch_input(9, severity="LOW")]
    inputs[3]["affectedSystems"] = [f"system-{i}" for i in range(12)]  # needs a LEAD
    body = await _submit_many(api, inputs)
    assert "errors" not in body, body
    assert [item["patch"]["patchId"] for item in body["data"]["submitPatches"]] == [f"P-{n}" for n in (0, 1, 2, 3, 9)]
    again = await _submit_many(api, inputs[:2])
    assert [item["created"] for item in again["data"]["submitPatches"]] == [False, False]

    page = (await api.gql(GROUPS, {"first": 1}, as_=VIEWER))["data"]["patchGroups"]
    assert page["totalCount"] == 2 and page["pageInfo"]["hasNextPage"]
    group = page["edges"][0]["node"]
    assert (group["cveId"], group["size"], group["pendingCount"], group["highestPriority"], group["requiresEscalationCount"]) == (
        "CVE-2024-6387", 4, 4, "HIGH", 1
    )
    assert group["statusCounts"] == {"PENDING": 4} and group["members"]["totalCount"] == 4 and len(group["members"]["edges"]) == 2

    forbidden = await api.gql(DECIDE, {"key": group["key"], "decision": "APPROVE"}, as_=VIEWER)
    assert forbidden["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    stale = await api.gql(DECIDE, {"key": group["key"], "decision": "APPROVE", "expected": [item["patch"]["id"] for item in body["data"]["submitPatches"][:3]]}, as_=REVIEWER)
    assert stale["errors"][0]["extensions"]["code"] == "CONFLICT" and "new in the group" in stale["errors"][0]["message"]
    result = (await api.gql(DECIDE, {"key": group["key"], "decision": "APPROVE"}, as_=REVIEWER))["data"]["decideGroup"]
    assert sorted(p["patchId"] for p in result["applied"]) == ["P-0", "P-1", "P-2"]
    assert [(s["code"], s["patch"]["patchId"]) for s in result["skipped"]] == [("FORBIDDEN", "P-3")]
    assert result["group"]["pendingCount"] == 1 and result["group"]["statusCounts"] == {"APPROVED": 3, "PENDING": 1}
    rejected = (await api.gql(DECIDE, {"key": group["key"], "decision": "REJECT", "reason": "blast radius"}, as_=LEAD))["data"]["decideGroup"]
    assert [p["status"] for p in rejected["applied"]] == ["REJECTED"] and rejected["group"]["pendingCount"] == 0

    metrics = (await api.client.get(f"{api.base}/metrics")).text
    assert 'hitl_group_decisions_total{decision="APPROVE"} 1.0' in metrics
    assert 'hitl_group_decision_members_total{decision="APPROVE",outcome="skipped"} 1.0' in metrics
    assert 'hitl_decisions_total{decision_type="APPROVED"} 3.0' in metrics


async def test_submit_patches_bad_item_index(api):
    inputs = [patch_input(n) for n in range(3)]
    inputs[1]["cveId"] = "CVE-bad"
    body = await _submit_many(api, inputs)
    error = body["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "cveId", "index": 1}
    assert (await api.gql("{ patches { totalCount } }", as_=VIEWER))["data"]["patches"]["totalCount"] == 0
    assert (await _submit_many(api, [patch_input(1)], as_=REVIEWER))["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    too_many = await _submit_many(api, [patch_input(n) for n in range(501)], as_=ADMIN)
    assert too_many["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_pending_groups_subscription(api):
    async with connect(api.base, token=VIEWER) as client:
        await client.subscribe(LIVE)
        assert (await client.data())["pendingGroups"] == {"totalCount": 0, "asOfSeq": 0, "items": []}
        await _submit_many(api, [patch_input(n, **FIX) for n in range(3)])
        page = (await client.data())["pendingGroups"]
        assert page["totalCount"] == 1 and page["items"][0]["pendingCount"] == 3 and page["asOfSeq"] == 3
        key = page["items"][0]["key"]
        await api.gql(DECIDE, {"key": key, "decision": "REJECT", "reason": "not this one"}, as_=REVIEWER)
        assert (await client.data())["pendingGroups"] == {"totalCount": 0, "asOfSeq": 6, "items": []}


async def test_patch_group_lookup(api):
    assert (await api.gql('{ patchGroup(key: "00000000000000000000000000000000") { key } }', as_=VIEWER))["data"] == {"patchGroup": None}
    bad = await api.gql('{ patchGroup(key: "nope") { key } }', as_=VIEWER)
    assert bad["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "key"}
    missing = await api.gql(DECIDE, {"key": "0" * 32, "decision": "APPROVE"}, as_=REVIEWER)
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"


PREVIEW = """query($key: String!, $decision: GroupDecision!) { groupDecisionPreview(key: $key, decision: $decision) {
  group { key pendingCount } applied { id patchId status } skipped { code message patch { id patchId status } } } }"""


async def test_group_decision_preview(api):
    inputs = [patch_input(n, **FIX) for n in range(3)]
    inputs[2]["affectedSystems"] = [f"system-{i}" for i in range(12)]  # needs a LEAD
    ids = [item["patch"]["id"] for item in (await _submit_many(api, inputs))["data"]["submitPatches"]]
    key = (await api.gql(GROUPS, {"first": 1}, as_=VIEWER))["data"]["patchGroups"]["edges"][0]["node"]["key"]

    viewer = await api.gql(PREVIEW, {"key": key, "decision": "APPROVE"}, as_=VIEWER)
    assert viewer["errors"][0]["extensions"]["code"] == "FORBIDDEN" and viewer["data"] is None
    missing = await api.gql(PREVIEW, {"key": "0" * 32, "decision": "APPROVE"}, as_=REVIEWER)
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    preview = (await api.gql(PREVIEW, {"key": key, "decision": "APPROVE"}, as_=REVIEWER))["data"]["groupDecisionPreview"]
    assert sorted(p["patchId"] for p in preview["applied"]) == ["P-0", "P-1"] and {p["status"] for p in preview["applied"]} == {"PENDING"}
    assert [(s["code"], s["patch"]["patchId"]) for s in preview["skipped"]] == [("FORBIDDEN", "P-2")]
    assert "needs a LEAD or ADMIN" in preview["skipped"][0]["message"] and preview["group"] == {"key": key, "pendingCount": 3}
    assert (await api.gql(PREVIEW, {"key": key, "decision": "REJECT"}, as_=LEAD))["data"]["groupDecisionPreview"]["skipped"] == []

    listed = [p["id"] for p in preview["applied"]] + [s["patch"]["id"] for s in preview["skipped"]]
    assert sorted(listed) == sorted(ids)
    result = (await api.gql(DECIDE, {"key": key, "decision": "APPROVE", "expected": listed}, as_=REVIEWER))["data"]["decideGroup"]
    assert [p["patchId"] for p in result["applied"]] == [p["patchId"] for p in preview["applied"]]
    assert [s["patch"]["patchId"] for s in result["skipped"]] == ["P-2"]
