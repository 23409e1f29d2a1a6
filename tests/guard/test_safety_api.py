"""The auto-approval safety fields over GraphQL on a real server: bad input is a coded error, and the guard's
state before any outcome."""

import pytest

from tests.support.server import ADMIN, VIEWER


@pytest.mark.parametrize(
    ("query", "field"),
    [("{ mlModels(first: 0) { version } }", "first"), ("{ mlModels(first: 101) { version } }", "first"),
     ('mutation { activateModel(version: "") { version } }', "version")],
)
async def test_bad_input_is_refused_with_the_field(api, query, field):
    body = await api.gql(query, as_=ADMIN)
    error = body["errors"][0]["extensions"]
    assert error["code"] == "BAD_USER_INPUT" and error["field"] == field


async def test_empty_registry_and_a_quiet_guard(api):
    body = await api.gql(
        "{ mlModels(first: null) { version } mlModel { version } autoApprovalState { guard { windowSize outcomes failures "
        "precisionUpperBound tripped trippedAt reason } } }", as_=VIEWER,
    )
    assert body["data"] == {
        "mlModels": [], "mlModel": None,
        "autoApprovalState": {"guard": {"windowSize": 200, "outcomes": 0, "failures": 0, "precisionUpperBound": None,
                                        "tripped": False, "trippedAt": None, "reason": None}},
    }
    unknown = await api.gql('mutation { activateModel(version: "xgb-none") { version } }', as_=ADMIN)
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"
