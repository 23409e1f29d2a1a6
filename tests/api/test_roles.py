"""API.md's role table, mutation by mutation and role by role, over real HTTP on SQLite and PostgreSQL.

An allowed call succeeds and appends exactly one audit entry; a refused one is FORBIDDEN and changes nothing
(no audit entry, same patch version and status).
"""

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.support.server import API_KEY, SERVICE, Api, submit, token

ROLES = ["VIEWER", "REVIEWER", "LEAD", "ADMIN", "SERVICE"]
# Subjects differ from the submitter (svc-upstream), so separation of duties never gets in the way.
TOKENS = {role: token(f"{role.lower()}-1", role.lower()) for role in ROLES}
SETUP_LEAD = token("setup-lead", "lead")
NO_ROLE = token("nobody", "no-such-role")
_numbers = itertools.count(1000)

WARGAMING = "{phase1Success: true, phase2Success: true, validationPassed: true, executionTimeMs: 100}"
SUBMIT = """mutation($n: String!) { submitPatch(input: {patchId: $n, apvId: "A", packageName: "p", currentVersion: "1.0.0",
  targetVersion: "1.0.1", severity: LOW}) { created } }"""
MUTATIONS = {
    "submitPatch": SUBMIT,
    "recordWargamingResult": f"mutation($id: ID!) {{ recordWargamingResult(id: $id, input: {WARGAMING}) {{ id }} }}",
    "approvePatch": 'mutation($id: ID!) { approvePatch(id: $id, comment: "ok") { id } }',
    "rejectPatch": 'mutation($id: ID!) { rejectPatch(id: $id, reason: "no") { id } }',
    "escalatePatch": 'mutation($id: ID!) { escalatePatch(id: $id, reason: "lead please") { id } }',
    "cancelPatch": 'mutation($id: ID!) { cancelPatch(id: $id, reason: "superseded") { id } }',
    "addComment": 'mutation($id: ID!) { addComment(id: $id, body: "hm") { id } }',
    "trainModel": "mutation { trainModel { version } }",
    "setAutoApprovalPaused": 'mutation { setAutoApprovalPaused(paused: true, reason: "incident") { paused } }',
    "recordDeploymentOutcome": "mutation($id: ID!) { recordDeploymentOutcome(id: $id, success: true) { id } }",
    "activateModel": 'mutation { activateModel(version: "xgb-none") { version } }',
    "submitPatches": SUBMIT.replace("submitPatch(input: {", "submitPatches(inputs: [{").replace("LOW})", "LOW}])"),
    "decideGroup": "mutation($key: String!) { decideGroup(key: $key, decision: APPROVE) { applied { id } skipped { code } } }",
    # Disabled endpoints on public addresses: nothing is sent from this test.
    "createWebhook": 'mutation { createWebhook(input: {url: "https://1.1.1.1/hook", enabled: false}) { secret } }',
    "updateWebhook": 'mutation($id: ID!) { updateWebhook(id: $id, input: {url: "https://1.0.0.1/hook", enabled: false}) { id } }',
    "deleteWebhook": "mutation($id: ID!) { deleteWebhook(id: $id) }",
    "rotateWebhookSecret": "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
    "redeliverWebhook": "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }",
}


async def gql_ok(api: Api, query: str, variables: dict | None = None, *, as_: str) -> dict:
    body = await api.gql(query, variables, as_=as_)
    assert "errors" not in body, body
    return body["data"]


async def no_patch(_api: Api) -> dict:
    return {"n": f"R-{next(_numbers)}"}


async def pending(api: Api) -> dict:
    patch = await submit(api, next(_numbers))
    assert patch["status"] == "PENDING" and not patch["requiresEscalation"] and patch["requiredApprovals"] == 1
    return {"id": patch["id"]}


async def group_of_one(api: Api) -> dict:
    n = next(_numbers)
    patch = await submit(api, n)
    groups = await gql_ok(
        api, "query($cve: String!) { patchGroups(filter: {cveId: $cve}) { edges { node { key } } } }", {"cve": f"CVE-2024-{1000 + n}"},
        as_=SETUP_LEAD,
    )
    return {"id": patch["id"], "key": groups["patchGroups"]["edges"][0]["node"]["key"]}


async def escalated(api: Api) -> dict:
    ids = await pending(api)
    await gql_ok(api, MUTATIONS["escalatePatch"], ids, as_=SETUP_LEAD)
    return ids


async def requires_escalation(api: Api) -> dict:
    patch = await submit(api, next(_numbers), affectedSystems=[f"system-{i}" for i in range(10)])
    assert patch["status"] == "PENDING" and patch["requiresEscalation"]
    return {"id": patch["id"]}


async def approved(api: Api) -> dict:
    ids = await pending(api)
    await gql_ok(api, MUTATIONS["approvePatch"], ids, as_=SETUP_LEAD)
    return ids


async def webhook(api: Api) -> dict:
    data = await gql_ok(api, MUTATIONS["createWebhook"], as_=TOKENS["ADMIN"])
    listed = await gql_ok(api, "{ webhookEndpoints { id } }", as_=TOKENS["ADMIN"])
    assert data["createWebhook"]["secret"]
    return {"id": listed["webhookEndpoints"][-1]["id"]}


async def no_delivery(_api: Api) -> dict:
    return {"id": "00000000-0000-0000-0000-0000000000ff"}


@dataclass(frozen=True)
class Case:
    mutation: str
    setup: Callable[[Api], Awaitable[dict]]
    allowed: frozenset[str]
    # What an allowed role gets when the call passes authorization but cannot succeed here.
    allowed_code: str | None = None


DECIDERS = frozenset({"REVIEWER", "LEAD", "ADMIN"})
SENIOR = frozenset({"LEAD", "ADMIN"})
CASES = {
    "submitPatch": Case("submitPatch", no_patch, frozenset({"SERVICE", "ADMIN"})),
    "recordWargamingResult": Case("recordWargamingResult", pending, frozenset({"SERVICE", "ADMIN"})),
    "approvePatch": Case("approvePatch", pending, DECIDERS),
    "approvePatch/ESCALATED": Case("approvePatch", escalated, SENIOR),
    "approvePatch/requiresEscalation": Case("approvePatch", requires_escalation, SENIOR),
    "rejectPatch": Case("rejectPatch", pending, DECIDERS),
    "rejectPatch/ESCALATED": Case("rejectPatch", escalated, SENIOR),
    "rejectPatch/requiresEscalation": Case("rejectPatch", requires_escalation, SENIOR),
    "escalatePatch": Case("escalatePatch", pending, DECIDERS),
    "escalatePatch/requiresEscalation": Case("escalatePatch", requires_escalation, SENIOR),
    "cancelPatch": Case("cancelPatch", pending, frozenset({"LEAD", "ADMIN", "SERVICE"})),
    "cancelPatch/ESCALATED": Case("cancelPatch", escalated, frozenset({"LEAD", "ADMIN", "SERVICE"})),
    "addComment": Case("addComment", pending, DECIDERS),
    "addComment/requiresEscalation": Case("addComment", requires_escalation, SENIOR),
    # Permission passes for ADMIN; an empty history then has too few labels to train on.
    "trainModel": Case("trainModel", no_patch, frozenset({"ADMIN"}), allowed_code="CONFLICT"),
    "setAutoApprovalPaused": Case("setAutoApprovalPaused", no_patch, frozenset({"ADMIN"})),
    "recordDeploymentOutcome": Case("recordDeploymentOutcome", approved, frozenset({"SERVICE", "ADMIN"})),
    # Permission passes for ADMIN; the registry is empty, so the version is not found.
    "activateModel": Case("activateModel", no_patch, frozenset({"ADMIN"}), allowed_code="NOT_FOUND"),
    "submitPatches": Case("submitPatches", no_patch, frozenset({"SERVICE", "ADMIN"})),
    "decideGroup": Case("decideGroup", group_of_one, DECIDERS),
    "createWebhook": Case("createWebhook", no_patch, frozenset({"ADMIN"})),
    "updateWebhook": Case("updateWebhook", webhook, frozenset({"ADMIN"})),
    "deleteWebhook": Case("deleteWebhook", webhook, frozenset({"ADMIN"})),
    "rotateWebhookSecret": Case("rotateWebhookSecret", webhook, frozenset({"ADMIN"})),
    # Permission passes for ADMIN; there is no such delivery.
    "redeliverWebhook": Case("redeliverWebhook", no_delivery, frozenset({"ADMIN"}), allowed_code="NOT_FOUND"),
}


def test_table_covers_every_mutation():
    from graphql_api.schema import schema

    served = set(schema._schema.mutation_type.fields)
    assert {case.mutation for case in CASES.values()} == served == set(MUTATIONS)


async def snapshot(api: Api, variables: dict) -> tuple:
    """Audit length plus the patch's status and version: what a refused call must leave alone."""
    body = await gql_ok(
        api, "query($id: ID!) { verifyAuditChain { valid entriesChecked } patch(id: $id) { status version } }",
        {"id": variables.get("id", "00000000-0000-0000-0000-000000000000")}, as_=TOKENS["ADMIN"],
    )
    assert body["verifyAuditChain"]["valid"]
    return body["verifyAuditChain"]["entriesChecked"], body["patch"]


async def test_mutation_roles(api):
    """Every case x every role on one server (a server per case cost more than the calls); the failure
    lists every (case, role) that disagrees with the table."""
    mismatches = []
    for name, case in CASES.items():
        for role in ROLES:
            variables = await case.setup(api)
            before = await snapshot(api, variables)
            body = await api.gql(MUTATIONS[case.mutation], variables, as_=TOKENS[role])
            code = body["errors"][0]["extensions"]["code"] if body.get("errors") else None
            after = await snapshot(api, variables)
            if role in case.allowed:
                if code != case.allowed_code:
                    mismatches.append(f"{name}: {role} should be allowed, got {body}")
                elif code is None and after[0] != before[0] + 1:
                    mismatches.append(f"{name}: {role}'s allowed call appended {after[0] - before[0]} audit entries, expected 1")
            else:
                if code != "FORBIDDEN" or body.get("data") is not None:
                    mismatches.append(f"{name}: {role} should be FORBIDDEN, got {body}")
                if after != before:
                    mismatches.append(f"{name}: {role}'s refused call changed state: {before} -> {after}")
    assert not mismatches, "\n".join(mismatches)


QUERIES = """query($id: ID!) {
  patch(id: $id) { id approvals { approver } comments { id } auditTrail { seq } }
  patchByPatchId(patchId: "P-1") { id }
  pendingPatches(first: 5) { totalCount }
  patches(first: 5) { totalCount }
  analyticsSummary { totalPatches }
  auditLog(first: 5) { totalCount }
  verifyAuditChain { valid }
  mlModel { version }
  autoApprovalState { paused }
  me { subject roles }
}"""


async def test_every_role_may_query(api):
    patch = await submit(api, 1)
    for role, bearer in TOKENS.items():
        data = await gql_ok(api, QUERIES, {"id": patch["id"]}, as_=bearer)
        assert data["patch"]["id"] == patch["id"] and data["pendingPatches"]["totalCount"] == 1
        assert data["me"] == {"subject": f"{role.lower()}-1", "roles": [role]}
    by_key = await api.gql(QUERIES, {"id": patch["id"]}, headers={"X-API-Key": API_KEY})
    assert "errors" not in by_key and by_key["data"]["me"] == {"subject": "service:internal", "roles": ["SERVICE"]}


async def test_a_token_without_a_known_role_may_do_nothing(api):
    patch = await submit(api, 1, as_=SERVICE)
    body = await api.gql(QUERIES, {"id": patch["id"]}, as_=NO_ROLE)
    assert body["data"] is None and {error["extensions"]["code"] for error in body["errors"]} == {"FORBIDDEN"}
    for name, query in MUTATIONS.items():
        body = await api.gql(query, {"id": patch["id"], "n": "R-x", "key": "0" * 32} if "$" in query else None, as_=NO_ROLE)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", (name, body)
    assert (await snapshot(api, {"id": patch["id"]}))[0] == 1  # the submission only
