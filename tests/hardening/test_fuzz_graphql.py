"""Fuzzing /graphql with schemathesis, and the regressions it is there to catch.

1. `test_fuzz_every_role`: schemathesis generates every query and mutation of the served schema (introspected
   as each role) against a real uvicorn server on SQLite and on PostgreSQL, as VIEWER, REVIEWER, LEAD, ADMIN
   (Bearer JWTs) and SERVICE (X-API-Key). Seeds fuzz_support.SEED + role index, no shrinking, a fixed number of
   examples per operation (ALLOWED_MUTATION / QUERY / ONCE below: 544 cases per backend, 1,088 in all) and a
   hard stop per role (fuzz_support.RUN_BUDGET_SECONDS, a safety net that normal runs do not reach). Strings,
   ints, IDs and DateTimes are biased (fuzz_support.custom_scalars: NULs, limits, existing ids, UTC offsets).
   Every response must be < 500, carry no INTERNAL_SERVER_ERROR, no null-for-non-null error and no SQL text or
   stack trace. A failure lists each distinct problem with the exact request body sent (schemathesis inlines
   the arguments, so the body is the whole request) and the response. Measured on the 2-core machine under
   load from other suites: ~18 s for both fuzz runs, ~42 s wall for this whole file including start-up.
2. Deterministic regressions for what the fuzzer (and the stack probe) found: a NUL byte, a lone UTF-16
   surrogate, out-of-range timestamps and cursors in every string/ID/DateTime argument that reaches the
   database; zero, negative and huge `first` on every paginated field. Each must be BAD_USER_INPUT naming the
   field, and a refused mutation must write nothing.
"""

import asyncio
import base64
import json

import pytest
from schemathesis.generation import GenerationMode
from strawberry.utils.str_converters import to_camel_case

from db.enums import Role
from db.services.actor import CAPABILITIES
from graphql_api.schema.mutations import Mutation
from graphql_api.schema.queries import Query

from tests.support.server import ADMIN, API_KEY, LEAD, REVIEWER, VIEWER, Api, submit
from tests.support import fuzz as fuzz_support
from tests.support.wsclient import connect

pytestmark = pytest.mark.hardening

ROLES = {
    "VIEWER": {"Authorization": f"Bearer {VIEWER}"},
    "REVIEWER": {"Authorization": f"Bearer {REVIEWER}"},
    "LEAD": {"Authorization": f"Bearer {LEAD}"},
    "ADMIN": {"Authorization": f"Bearer {ADMIN}"},
    "SERVICE": {"X-API-Key": API_KEY},
}
NUL = "\x00"
SURROGATE = "\ud800"  # only JSON can carry it (a GraphQL string literal cannot): sent as a variable


async def post_raw(api: Api, query: str, variables: dict | None = None, *, headers: dict | None = None) -> dict:
    """POST with ASCII-escaped JSON, so that lone surrogates travel as `\\ud800` like any JSON client sends them."""
    body = json.dumps({"query": query, "variables": variables or {}}, ensure_ascii=True)
    sent = {"Content-Type": "application/json", **(headers or ROLES["ADMIN"])}
    response = await api.client.post(f"{api.base}/graphql", content=body, headers=sent)
    assert response.status_code < 500, (response.status_code, response.text)
    return response.json()


async def seed_data(api: Api) -> dict[str, str]:
    """A few patches in different states and a comment, so that fuzzed ids hit real rows."""
    pending = await submit(api, 1)
    critical = await submit(api, 2, severity="CRITICAL")
    approved = await submit(api, 3, severity="LOW")
    major = await submit(api, 4, currentVersion="1.0.0", targetVersion="2.0.0", severity="MEDIUM")
    body = await api.gql('mutation($id: ID!) { approvePatch(id: $id) { status } }', {"id": approved["id"]}, as_=REVIEWER)
    assert body["data"]["approvePatch"]["status"] == "APPROVED", body
    body = await api.gql('mutation($id: ID!) { addComment(id: $id, body: "looks fine") { id } }', {"id": pending["id"]}, as_=REVIEWER)
    comment = body["data"]["addComment"]["id"]
    return {"pending": pending["id"], "critical": critical["id"], "approved": approved["id"], "major": major["id"], "comment": comment}


async def counts(api: Api) -> dict:
    """What a refused mutation must leave unchanged: rows, audit entries, versions, comments, the kill switch."""
    body = await post_raw(
        api,
        """{ patches(first: 500) { totalCount edges { node { id version status comments { id } approvals { approver } } } }
             auditLog(first: 1) { totalCount } autoApprovalState { paused reason } }""",
    )
    assert "errors" not in body, body
    return body["data"]


# --- 1. the fuzzer ----------------------------------------------------------------------------------------


# Examples per operation and role (positive = schema-valid literals, negative = schema-invalid ones the server
# must refuse with a coded error). Operations a role may call get the most; queries (every role may read) are
# spread over the five roles by giving each role its own seed; operations a role may not call get one case
# (the FORBIDDEN path must be clean too); argument-less ones one case (only the selection set varies).
ALLOWED_MUTATION = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 3}
QUERY = {GenerationMode.POSITIVE: 5, GenerationMode.NEGATIVE: 2}
ONCE = {GenerationMode.POSITIVE: 1}


@pytest.fixture
def api_settings() -> dict:
    """No webhook sending: fuzzed createWebhook calls (as ADMIN) may name any public address."""
    return {"webhooks": False}


def _capabilities() -> dict[str, str | None]:
    """'Mutation.approvePatch' -> 'decide', from the permission classes the resolvers declare; None for a field any
    authenticated caller may use (`me`)."""
    found = {}
    for root in (Query, Mutation):
        for definition in root.__strawberry_definition__.fields:
            (permission,) = definition.permission_classes
            found[f"{root.__name__}.{to_camel_case(definition.python_name)}"] = getattr(permission, "capability", None)
    return found


CAPABILITY_OF = _capabilities()


def plan_for(role: str):  # noqa: ANN201
    def plan(operation) -> list[tuple[GenerationMode, int]]:  # noqa: ANN001
        capability = CAPABILITY_OF[operation.label]
        allowed = capability is None or Role(role) in CAPABILITIES[capability]
        if not allowed or not fuzz_support.has_arguments(operation):
            budget = ONCE
        else:
            budget = QUERY if operation.label.startswith("Query.") else ALLOWED_MUTATION
        return list(budget.items())

    return plan


async def test_fuzz_every_role(api: Api):
    """One server per backend; the five roles one after the other (each with its own seed), so later roles also
    meet the state earlier ones left (approved, cancelled, escalated patches, a paused kill switch...)."""
    ids = list((await seed_data(api)).values())
    backend = api.settings.database_url.split(":")[0]
    runs = []
    for index, role in enumerate(ROLES):
        run_seed = fuzz_support.SEED + index
        stats = await asyncio.to_thread(
            fuzz_support.fuzz, f"{api.base}/graphql", ROLES[role], role=f"{role} (seed {run_seed})", known_ids=ids, plan=plan_for(role), run_seed=run_seed
        )
        runs.append(stats)
        missing = set(CAPABILITY_OF) - set(stats.by_operation)
        assert not missing, f"{role}: operations never sent (time budget?): {sorted(missing)}"
    print(f"\n[fuzz {backend}] {sum(r.cases for r in runs)} cases generated, {sum(r.sent for r in runs)} sent\n{fuzz_support.report(runs)}")
    if any(run.findings for run in runs):
        pytest.fail(f"schemathesis found problems (POST the request body to /graphql with the role's credential to reproduce):\n{fuzz_support.report(runs)}")
    chain = await post_raw(api, "{ verifyAuditChain { valid firstBrokenSeq } }")
    assert chain["data"]["verifyAuditChain"]["valid"], chain


def test_the_checks_catch_what_they_are_meant_to():
    """The fuzz oracle can fail: a 5xx, an INTERNAL_SERVER_ERROR and leaked SQL are each reported."""
    internal = json.dumps({"errors": [{"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]})
    sql = json.dumps(
        {"errors": [{"message": '(sqlalchemy.dialects.postgresql.asyncpg.Error) invalid byte sequence for encoding "UTF8": 0x00 [SQL: SELECT x FROM patches]', "extensions": {"code": "BAD_USER_INPUT"}}]}
    )
    trace = json.dumps({"errors": [{"message": "boom", "extensions": {"code": "BAD_USER_INPUT", "stacktrace": ['Traceback (most recent call last):', '  File "/x/y.py", line 3']}}]})
    assert fuzz_support.problems(502, "<html>bad gateway</html>", "{ me { subject } }") == ["HTTP 502", "response is not JSON"]
    assert fuzz_support.problems(200, internal, "{ me { subject } }") == ["INTERNAL_SERVER_ERROR"]
    assert any(p.startswith("leaks internals") for p in fuzz_support.problems(200, sql, "{ me { subject } }"))
    assert any(p.startswith("leaks internals") for p in fuzz_support.problems(200, trace, "{ me { subject } }"))
    # ...but the client's own text echoed back is not a leak, and coded client errors are fine.
    echoed = json.dumps({"errors": [{"message": "unknown severity 'SELECT 1 FROM t'", "extensions": {"code": "BAD_USER_INPUT", "field": "severity"}}]})
    assert fuzz_support.problems(200, echoed, '{ x(s: "SELECT 1 FROM t") }') == []


# --- 2. regressions: bad text in every string argument that reaches the database -----------------------

# (role, query with $v, variables builder (ids, value) -> variables, expected extensions.field)
QUERY_STRINGS = [
    ("patchByPatchId(patchId)", "query($v: String!) { patchByPatchId(patchId: $v) { id } }", lambda ids, v: {"v": v}, "patchId"),
    ("patch(id)", "query($v: ID!) { patch(id: $v) { id } }", lambda ids, v: {"v": v}, "id"),
    ("pendingPatches(packageName)", "query($v: String) { pendingPatches(filter: {packageName: $v}) { totalCount } }", lambda ids, v: {"v": v}, "packageName"),
    ("pendingPatches(cveId)", "query($v: String) { pendingPatches(filter: {cveId: $v}) { totalCount } }", lambda ids, v: {"v": v}, "cveId"),
    ("pendingPatches(after)", "query($v: String) { pendingPatches(after: $v) { totalCount } }", lambda ids, v: {"v": v}, "after"),
    ("patches(decidedBy)", "query($v: String) { patches(filter: {decidedBy: $v}) { totalCount } }", lambda ids, v: {"v": v}, "decidedBy"),
    ("patches(after)", "query($v: String) { patches(after: $v) { totalCount } }", lambda ids, v: {"v": v}, "after"),
    ("auditLog(actor)", "query($v: String) { auditLog(filter: {actor: $v}) { totalCount } }", lambda ids, v: {"v": v}, "actor"),
    ("auditLog(action)", "query($v: String) { auditLog(filter: {action: $v}) { totalCount } }", lambda ids, v: {"v": v}, "action"),
    ("auditLog(decisionId)", "query($v: ID) { auditLog(filter: {decisionId: $v}) { totalCount } }", lambda ids, v: {"v": v}, "decisionId"),
    ("auditLog(after)", "query($v: String) { auditLog(after: $v) { totalCount } }", lambda ids, v: {"v": v}, "after"),
]


def _submit_input(value: str, key: str) -> dict:
    base = {"patchId": "P-NEW", "apvId": "APV-NEW", "packageName": "urllib3", "currentVersion": "1.0.0", "targetVersion": "1.0.1", "severity": "LOW"}
    nested = {
        "cweIds": {"cweIds": [value]},
        "affectedSystems": {"affectedSystems": [value]},
        "modelVersion": {"mlPrediction": {"modelVersion": value, "confidence": 0.5, "prediction": True}},
        "shapValues": {"mlPrediction": {"modelVersion": "m1", "confidence": 0.5, "prediction": True, "shapValues": [{"feature": value, "value": 0.1}]}},
        "errorMessage": {"wargaming": {"phase1Success": True, "phase2Success": True, "validationPassed": True, "executionTimeMs": 1, "errorMessage": value}},
        "exploitId": {"wargaming": {"phase1Success": True, "phase2Success": True, "validationPassed": True, "executionTimeMs": 1, "exploitId": value}},
    }
    return {**base, **nested.get(key, {key: value})}


SUBMIT = "mutation($v: SubmitPatchInput!) { submitPatch(input: $v) { created } }"
SUBMIT_FIELDS = [
    "patchId", "apvId", "packageName", "currentVersion", "targetVersion", "cveId", "cvssVector", "diff",
    "cweIds", "affectedSystems", "modelVersion", "shapValues", "errorMessage", "exploitId",
]
WARGAMING = {"phase1Success": True, "phase2Success": True, "validationPassed": True, "executionTimeMs": 5}
MUTATION_STRINGS = [
    *[(f"submitPatch({key})", SUBMIT, (lambda key: lambda ids, v: {"v": _submit_input(v, key)})(key), key) for key in SUBMIT_FIELDS],
    ("recordWargamingResult(errorMessage)", "mutation($id: ID!, $v: WargamingInput!) { recordWargamingResult(id: $id, input: $v) { id } }",
     lambda ids, v: {"id": ids["pending"], "v": {**WARGAMING, "errorMessage": v}}, "errorMessage"),
    ("recordWargamingResult(exploitId)", "mutation($id: ID!, $v: WargamingInput!) { recordWargamingResult(id: $id, input: $v) { id } }",
     lambda ids, v: {"id": ids["pending"], "v": {**WARGAMING, "exploitId": v}}, "exploitId"),
    ("recordWargamingResult(id)", "mutation($v: ID!) { recordWargamingResult(id: $v, input: {phase1Success: true, phase2Success: true, validationPassed: true, executionTimeMs: 1}) { id } }",
     lambda ids, v: {"v": v}, "id"),
    ("approvePatch(comment)", "mutation($id: ID!, $v: String) { approvePatch(id: $id, comment: $v) { id } }", lambda ids, v: {"id": ids["pending"], "v": v}, "comment"),
    ("approvePatch(id)", "mutation($v: ID!) { approvePatch(id: $v) { id } }", lambda ids, v: {"v": v}, "id"),
    ("rejectPatch(reason)", "mutation($id: ID!, $v: String!) { rejectPatch(id: $id, reason: $v) { id } }", lambda ids, v: {"id": ids["pending"], "v": v}, "reason"),
    ("rejectPatch(comment)", "mutation($id: ID!, $v: String) { rejectPatch(id: $id, reason: \"no\", comment: $v) { id } }", lambda ids, v: {"id": ids["pending"], "v": v}, "comment"),
    ("escalatePatch(reason)", "mutation($id: ID!, $v: String!) { escalatePatch(id: $id, reason: $v) { id } }", lambda ids, v: {"id": ids["pending"], "v": v}, "reason"),
    ("cancelPatch(reason)", "mutation($id: ID!, $v: String!) { cancelPatch(id: $id, reason: $v) { id } }", lambda ids, v: {"id": ids["pending"], "v": v}, "reason"),
    ("cancelPatch(id)", "mutation($v: ID!) { cancelPatch(id: $v, reason: \"dup\") { id } }", lambda ids, v: {"v": v}, "id"),
    ("addComment(body)", "mutation($id: ID!, $v: String!) { addComment(id: $id, body: $v) { id } }", lambda ids, v: {"id": ids["pending"], "v": v}, "body"),
    ("addComment(parentId)", "mutation($id: ID!, $v: ID) { addComment(id: $id, body: \"re\", parentId: $v) { id } }", lambda ids, v: {"id": ids["pending"], "v": v}, "parentId"),
    ("setAutoApprovalPaused(reason)", "mutation($v: String!) { setAutoApprovalPaused(paused: true, reason: $v) { paused } }", lambda ids, v: {"v": v}, "reason"),
    ("recordDeploymentOutcome(details)", "mutation($id: ID!, $v: String) { recordDeploymentOutcome(id: $id, success: true, details: $v) { id } }",
     lambda ids, v: {"id": ids["approved"], "v": v}, "details"),
    ("decideGroup(key)", "mutation($v: String!) { decideGroup(key: $v, decision: APPROVE) { applied { id } } }", lambda ids, v: {"v": v}, "key"),
    ("decideGroup(reason)", 'mutation($v: String) { decideGroup(key: "00000000000000000000000000000000", decision: REJECT, reason: $v) { applied { id } } }',
     lambda ids, v: {"v": v}, "reason"),
    ("decideGroup(expectedMemberIds)", 'mutation($v: ID!) { decideGroup(key: "00000000000000000000000000000000", decision: APPROVE, expectedMemberIds: [$v]) { applied { id } } }',
     lambda ids, v: {"v": v}, "expectedMemberIds"),
    ("submitPatches(patchId)", "mutation($v: SubmitPatchInput!) { submitPatches(inputs: [$v]) { created } }",
     lambda ids, v: {"v": _submit_input(v, "patchId")}, "patchId"),
]
BAD_TEXT = {"nul": f"ab{NUL}cd", "surrogate": f"ab{SURROGATE}cd"}


def _bad_user_input(body: dict, field: str, case: str) -> None:
    errors = body.get("errors") or []
    assert errors, f"{case}: accepted: {body}"
    codes = [(error.get("extensions") or {}).get("code") for error in errors]
    assert codes == ["BAD_USER_INPUT"], f"{case}: {body}"
    assert errors[0]["extensions"].get("field") == field, f"{case}: expected extensions.field={field!r}: {body}"


async def test_bad_text_in_query_arguments_is_bad_user_input(api: Api):
    ids = await seed_data(api)
    for kind, value in BAD_TEXT.items():
        for name, query, variables, field in QUERY_STRINGS:
            body = await post_raw(api, query, variables(ids, value), headers=ROLES["VIEWER"])
            _bad_user_input(body, field, f"{name} with {kind}")


async def test_bad_text_in_mutation_arguments_is_refused_and_writes_nothing(api: Api):
    ids = await seed_data(api)
    before = await counts(api)
    for kind, value in BAD_TEXT.items():
        for name, query, variables, field in MUTATION_STRINGS:
            body = await post_raw(api, query, variables(ids, value), headers=ROLES["ADMIN"])
            _bad_user_input(body, field, f"{name} with {kind}")
            assert body.get("data") is None, f"{name}: {body}"
    # Literals, as schemathesis sends them: `\\u0000` inside the query text takes the same path.
    for query, field in [
        ('{ patchByPatchId(patchId: "a\\u0000b") { id } }', "patchId"),
        ('{ pendingPatches(filter: {packageName: "a\\u0000"}) { totalCount } }', "packageName"),
        ('{ auditLog(filter: {actor: "\\u0000"}) { totalCount } }', "actor"),
        (f'mutation {{ addComment(id: "{ids["pending"]}", body: "x\\u0000") {{ id }} }}', "body"),
        (f'mutation {{ rejectPatch(id: "{ids["pending"]}", reason: "\\u0000") {{ id }} }}', "reason"),
        ('mutation { submitPatch(input: {patchId: "P\\u0000", apvId: "A", packageName: "p", currentVersion: "1", targetVersion: "2", severity: LOW}) { created } }', "patchId"),
    ]:
        _bad_user_input(await post_raw(api, query), field, query)
    assert await counts(api) == before, "a refused mutation changed something"


# --- 2b. timestamps and cursors out of range --------------------------------------------------------------


def _cursor(*parts: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


async def test_out_of_range_timestamps_and_forged_cursors_are_bad_user_input(api: Api):
    # Valid ISO timestamps whose UTC instant is outside the representable range (year 1 at +01:00).
    for query, field in [
        ("query($v: DateTime) { analyticsSummary(since: $v) { totalPatches } }", "since"),
        ("query($v: DateTime) { analyticsSummary(until: $v) { totalPatches } }", "until"),
        ("query($v: DateTime) { patches(filter: {createdAfter: $v}) { totalCount } }", "createdAfter"),
        ("query($v: DateTime) { patches(filter: {createdBefore: $v}) { totalCount } }", "createdBefore"),
        ("query($v: DateTime) { auditLog(filter: {since: $v}) { totalCount } }", "since"),
        ("query($v: DateTime) { auditLog(filter: {until: $v}) { totalCount } }", "until"),
    ]:
        for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            _bad_user_input(await post_raw(api, query, {"v": value}), field, f"{query} with {value}")
        body = await post_raw(api, query, {"v": "0001-01-01T00:00:00Z"})  # the extremes themselves, in UTC, are fine
        assert "errors" not in body, body
    # Cursors are opaque, but a client can forge one: numbers past BIGINT, timestamps past the range, NULs.
    some_id, huge = "6f1c2b1e-0000-4000-8000-000000000000", 10**22
    for name, cursor in [
        ("auditLog", _cursor(huge)),
        ("auditLog", _cursor(-huge)),
        ("pendingPatches", _cursor(huge, "2026-01-01T00:00:00+00:00", some_id)),
        ("pendingPatches", _cursor(2**40, "2026-01-01T00:00:00+00:00", some_id)),
        ("pendingPatches", _cursor(1, "0001-01-01T00:00:00+01:00", some_id)),
        ("patches", _cursor("0001-01-01T00:00:00+01:00", some_id)),
        ("patches", _cursor(f"2026-01-01T00:00:00{NUL}", some_id)),
    ]:
        query = f"query($v: String) {{ {name}(after: $v) {{ totalCount }} }}"
        _bad_user_input(await post_raw(api, query, {"v": cursor}), "after", f"{name}(after: {cursor})")
    for variables, field in [({"after": f"a{NUL}"}, "after"), ({"after": _cursor(huge)}, "after"), ({"id": f"a{NUL}"}, "decisionId")]:
        async with connect(api.base, token=VIEWER) as client:
            await client.subscribe("subscription($after: String, $id: ID) { patchEvents(after: $after, filter: {decisionId: $id}) { seq } }", variables)
            message = await client.next_payload()
        _bad_user_input({"errors": _ws_errors(message)}, field, f"patchEvents {variables}")


def _ws_errors(message: dict) -> list:
    return message["payload"] if message["type"] == "error" else message["payload"].get("errors") or []


# --- 2c. page sizes -----------------------------------------------------------------------------------------

PAGED = ["pendingPatches", "patches", "auditLog", "patchGroups"]
BAD_FIRST = [0, -1, -(2**31), 501, 10**6, 2**31 - 1]


async def test_page_size_out_of_range_is_bad_user_input(api: Api):
    """Every paginated or limited field: GraphQL (variables and literals), the pendingQueue subscription, REST."""
    await seed_data(api)
    for name in PAGED:
        query = f"query($n: Int) {{ {name}(first: $n) {{ totalCount edges {{ cursor }} }} }}"
        for first in BAD_FIRST:
            _bad_user_input(await post_raw(api, query, {"n": first}), "first", f"{name}(first: {first}) as a variable")
            _bad_user_input(await post_raw(api, f"{{ {name}(first: {first}) {{ totalCount }} }}"), "first", f"{name}(first: {first}) inline")
        for first in (1, 500):
            body = await post_raw(api, query, {"n": first})
            assert "errors" not in body and len(body["data"][name]["edges"]) <= first, body
        # Beyond 32 bits GraphQL itself refuses the literal: a coded client error, not a crash.
        body = await post_raw(api, f"{{ {name}(first: {2**31}) {{ totalCount }} }}")
        assert [(e.get("extensions") or {}).get("code") for e in body["errors"]] == ["BAD_USER_INPUT"], body
    for first in (0, -1, 501):
        async with connect(api.base, token=VIEWER) as client:
            await client.subscribe("subscription($n: Int) { pendingQueue(first: $n) { totalCount } }", {"n": first})
            message = await client.next_payload()
        _bad_user_input({"errors": _ws_errors(message)}, "first", f"pendingQueue(first: {first})")
    for params, field in [("limit=-1", "limit"), ("limit=0", "limit"), ("limit=501", "limit"), ("limit=99999999999999999999", "limit"),
                          ("offset=-1", "offset"), ("offset=99999999999999999999", "offset")]:
        response = await api.client.get(f"{api.base}/hitl/patches/pending?{params}", headers=ROLES["VIEWER"])
        assert response.status_code == 400 and response.json()["error"]["field"] == field, (params, response.text)


async def test_variable_of_the_wrong_type_is_bad_user_input(api: Api):
    query = "query($n: Int) { pendingPatches(first: $n) { totalCount } }"
    for value in (2**31, -(2**31) - 1, "ten", 1.5, f"1{NUL}"):
        body = await post_raw(api, query, {"n": value})
        assert [(e.get("extensions") or {}).get("code") for e in body["errors"]] == ["BAD_USER_INPUT"], (value, body)
