"""verifyAuditChain(checkpoints:) over GraphQL on both backends: a checkpoint line as the service logs it pastes
into the input as it is; one the key did not sign is BAD_USER_INPUT on field `checkpoints` and changes nothing."""

import json
from datetime import timedelta

from db.engine import Database
from db.services import audit_checkpoints
from db.types import utcnow
from tests.support.server import CHECKPOINT_KEY, VIEWER, submit

VERIFY = "query($c: [AuditCheckpointInput!]) { verifyAuditChain(checkpoints: $c) { valid entriesChecked firstBrokenSeq truncated } }"


async def _checkpoint_line(api) -> dict:
    db = Database.from_url(api.settings.effective_database_url)
    try:
        async with db.write() as session:
            checkpoint = await audit_checkpoints.write_due(session=session, key=CHECKPOINT_KEY.encode(), now=utcnow(), every=timedelta(0))
    finally:
        await db.dispose()
    return json.loads(checkpoint.line())


async def test_a_logged_line_pastes_into_the_input_and_a_forgery_is_refused(api):
    for n in range(3):
        await submit(api, n)
    line = await _checkpoint_line(api)
    assert line["seq"] == 3 and line["event"] == "audit_checkpoint"

    body = await api.gql(VERIFY, {"c": [line]}, as_=VIEWER)
    assert body["data"]["verifyAuditChain"] == {"valid": True, "entriesChecked": 3, "firstBrokenSeq": None, "truncated": False}
    without = await api.gql(VERIFY, {"c": None}, as_=VIEWER)
    assert without["data"]["verifyAuditChain"]["truncated"] is False

    forged = {**line, "seq": 2}
    response = await api.post(VERIFY, {"c": [line, forged]}, as_=VIEWER)
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "checkpoints"}, error
    assert "checkpoints[1]: the signature does not verify" in error["message"]
    unknown_field = await api.post(VERIFY, {"c": [{**line, "level": "info"}]}, as_=VIEWER)
    assert unknown_field.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
