"""The reviewer console in a real browser (chromium, headless) against a real `hitl serve`: the scenarios of
issue 17. Screenshots of the main pages land in tests/console/screenshots/ (git-ignored)."""

import itertools
import random
import shutil
import time
import uuid

import asyncpg
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By

from db.engine import Database
from tests.support import console_data
from tests.support.browser import (
    axe_violations, button, buttons, chromium, click, console_errors, element, find, has_text, requested_urls, screenshot, sign_in, text, wait_for, wait_live,
)
from tests.support.console_server import serve
from tests.support.factories import submit as submit_directly
from tests.support.pg import pg_admin, pg_dsn, pg_url
from tests.support.server import ADMIN, LEAD, REVIEWER, REVIEWER2, SERVICE, VIEWER, token
from tests.support.stalling_relay import StallingRelay

DETAIL = "query($id: ID!) { patch(id: $id) { status version auditTrail { action actor details } } }"
_prefixes = itertools.count(1)  # the module's tests share a server: every patch id is new


def gql(console, query: str, variables: dict | None = None, *, as_: str = SERVICE) -> dict:
    return console_data.gql(console.client, console.base, query, variables, token=as_)


def submit(console, n: int, **overrides) -> dict:
    data = console_data.patch_input(n, random.Random(n), prefix=f"T{next(_prefixes)}", **overrides)
    return gql(console, console_data.SUBMIT, {"i": data})["submitPatch"]["patch"]


def queue_ids(driver) -> list[str]:
    return [row.get_attribute("data-patch-id") for row in find(driver, ".queue-table tbody tr[data-patch-id]")]


def open_patch(driver, console, patch: dict) -> None:
    driver.get(f"{console.base}/console/patches/{patch['id']}")
    wait_for(driver, has_text("main h1", patch["patchId"]), what="the patch page")


async def test_live_queue_in_priority_order_and_a_new_critical_patch_on_top_within_2_s(console_each_backend):
    """Scenario 1: the queue in priority order; a CRITICAL patch submitted over HTTP by another client appears at
    the top within 2 s, without a reload (the pendingQueue subscription); the counts follow; decided elsewhere, it
    leaves the same way."""
    console = console_each_backend
    for n, severity in enumerate(("LOW", "HIGH", "MEDIUM", "HIGH"), 1):
        submit(console, n, severity=severity)
    with chromium() as driver:
        sign_in(driver, console.base, REVIEWER)
        wait_for(driver, lambda d: len(queue_ids(d)) == 4, what="four rows")
        priorities = [badge.text for badge in find(driver, ".queue-table tbody tr td:first-child .badge")]
        assert priorities == ["HIGH", "HIGH", "MEDIUM", "LOW"]
        assert "0\nCRITICAL" in text(driver, ".counts")
        driver.execute_script("window.__notReloaded = true")

        submitted = time.monotonic()  # the clock runs from before the other client's request
        critical = submit(console, 9, severity="CRITICAL")
        wait_for(driver, lambda d: queue_ids(d)[:1] == [critical["id"]], timeout=2, what="the CRITICAL patch on top")
        appeared = time.monotonic() - submitted
        assert driver.execute_script("return window.__notReloaded") is True
        wait_for(driver, has_text(".counts", "1\nCRITICAL"), timeout=2, what="the CRITICAL count")
        assert appeared < 2
        screenshot(driver, f"queue-live-{console.database_url.split('+')[0]}")
        gql(console, 'mutation($id: ID!) { rejectPatch(id: $id, reason: "duplicate") { status } }', {"id": critical["id"]}, as_=LEAD)
        wait_for(driver, lambda d: critical["id"] not in queue_ids(d) and len(queue_ids(d)) == 4, timeout=2, what="the decided patch gone")
        assert console_errors(driver) == []


async def test_approve_and_reject_flows_end_in_the_right_status_and_audit_entry(console):
    """Scenario 2: approve with a comment on the patch page; reject from the queue with the keyboard, refused in
    the page while the reason is blank (nothing is sent), then with a reason."""
    approved, rejected = submit(console, 1, severity="HIGH"), submit(console, 2, severity="MEDIUM")
    with chromium() as driver:
        sign_in(driver, console.base, REVIEWER)
        open_patch(driver, console, approved)
        button(driver, "Approve", ".decisions").click()
        element(driver, "dialog[open] textarea[name=comment]").send_keys("changelog checked")
        button(driver, "Approve", "dialog[open]").click()
        wait_for(driver, has_text(".toasts", "is now approved"), what="the approval notice")
        wait_for(driver, has_text(".patch-head .badges", "APPROVED"), what="the approved status")
        assert [b for b in buttons(driver, ".decisions") if b in ("Approve", "Reject")] == []

        element(driver, ".crumbs a").click()
        wait_for(driver, lambda d: queue_ids(d) == [rejected["id"]], what="the queue without the approved patch")
        element(driver, "body", By.TAG_NAME).send_keys("j")  # selects the first row and focuses it
        driver.switch_to.active_element.send_keys("r")
        button(driver, "Reject", "dialog[open]").click()
        wait_for(driver, has_text("dialog[open] .problem", "A reason is required"), what="the missing reason refused")
        untouched = gql(console, DETAIL, {"id": rejected["id"]})["patch"]
        assert (untouched["status"], untouched["version"], [e["action"] for e in untouched["auditTrail"]]) == ("PENDING", 1, ["SUBMITTED"])
        element(driver, "dialog[open] textarea[name=reason]").send_keys("breaks the TLS handshake")
        button(driver, "Reject", "dialog[open]").click()
        wait_for(driver, has_text(".toasts", "is now rejected"), what="the rejection notice")
        wait_for(driver, lambda d: queue_ids(d) == [], what="an empty queue")

    done = gql(console, DETAIL, {"id": approved["id"]})["patch"]
    assert done["status"] == "APPROVED" and done["auditTrail"][-1]["action"] == "APPROVED"
    assert done["auditTrail"][-1]["actor"] == "rita" and done["auditTrail"][-1]["details"]["comment"] == "changelog checked"
    refused = gql(console, DETAIL, {"id": rejected["id"]})["patch"]
    assert refused["status"] == "REJECTED" and [e["action"] for e in refused["auditTrail"]] == ["SUBMITTED", "REJECTED"]
    assert refused["auditTrail"][-1]["actor"] == "rita" and refused["auditTrail"][-1]["details"]["reason"] == "breaks the TLS handshake"


async def test_two_browsers_on_one_patch_the_second_decision_shows_the_conflict_and_the_new_state(console):
    """Scenario 3: both reviewers look at version 1; the first approves; the second's reject (sent with
    expectedVersion 1) is not applied, and the page says what changed and shows the new state."""
    patch = submit(console, 1, severity="HIGH")
    with chromium() as first, chromium() as second:
        sign_in(first, console.base, REVIEWER)
        sign_in(second, console.base, REVIEWER2)
        open_patch(first, console, patch)
        open_patch(second, console, patch)
        button(second, "Reject", ".decisions").click()
        element(second, "dialog[open] textarea[name=reason]").send_keys("too risky for a Friday")

        button(first, "Approve", ".decisions").click()
        button(first, "Approve", "dialog[open]").click()
        wait_for(first, has_text(".patch-head .badges", "APPROVED"), what="the first decision")
        wait_for(second, has_text(".notice", "approved by rita"), what="the live update under the open dialog")

        button(second, "Reject", "dialog[open]").click()
        wait_for(second, has_text("dialog[open]", "not applied"), what="the conflict")
        shown = text(second, "dialog[open]")
        assert "You saw version 1 (PENDING); it is now version 2" in shown and "APPROVED" in shown
        assert "Status PENDING APPROVED" in shown and "Decided by – rita" in shown
        screenshot(second, "conflict")
        button(second, "Review the new state", "dialog[open]").click()
        wait_for(second, lambda d: not find(d, "dialog[open]"), what="the dialog closed")
        assert "APPROVED" in text(second, ".patch-head .badges") and "Reject" not in buttons(second, ".decisions")
    final = gql(console, DETAIL, {"id": patch["id"]})["patch"]
    assert final["status"] == "APPROVED" and [e["action"] for e in final["auditTrail"]] == ["SUBMITTED", "APPROVED"]


async def test_viewer_sees_no_decision_controls_and_reviewer_none_on_escalation(console):
    """Scenario 4, first half: VIEWER sees no decision controls anywhere; REVIEWER none on a patch that needs
    escalation (LEAD does)."""
    plain = submit(console, 1, severity="HIGH")
    escalation = submit(console, 2, severity="CRITICAL", targetVersion="9.0.0", currentVersion="1.0.0")  # CRITICAL + MAJOR
    with chromium() as driver:
        sign_in(driver, console.base, VIEWER)
        wait_for(driver, lambda d: len(queue_ids(d)) == 2, what="the queue")
        assert not find(driver, ".queue-table .actions button")
        assert "Signed in as vera (VIEWER)" in text(driver, ".topbar")
        open_patch(driver, console, plain)
        assert buttons(driver, ".decisions") == [] and not find(driver, ".comment-form")
        assert "deciding needs a REVIEWER, LEAD or ADMIN role" in text(driver, ".decisions")
        driver.get(f"{console.base}/console/model")
        wait_for(driver, has_text(".page", "Only an ADMIN can pause"), what="the model page")
        assert "Pause auto-approval" not in buttons(driver)

    with chromium() as driver:
        sign_in(driver, console.base, REVIEWER)
        open_patch(driver, console, escalation)
        assert "needs escalation" in text(driver, ".patch-head") and buttons(driver, ".decisions") == []
        open_patch(driver, console, plain)
        assert {"Approve", "Reject", "Escalate"} <= set(buttons(driver, ".decisions"))
    with chromium() as driver:
        sign_in(driver, console.base, LEAD)
        open_patch(driver, console, escalation)
        assert {"Approve", "Reject", "Cancel patch"} <= set(buttons(driver, ".decisions"))


async def test_an_expired_token_leads_back_to_sign_in(console):
    """Scenario 4, second half: the service closes the WebSocket with 4401 when the token expires (the servers of
    these tests have no clock-skew leeway); the console drops the token and asks for a new one. A token that has
    already expired never gets past sign-in."""
    short = token("sam", "reviewer", ttl=12)  # long enough to sign in on a busy machine
    with chromium() as driver:
        sign_in(driver, console.base, short)
        wait_for(driver, has_text("main", "Sign in to the reviewer console"), timeout=30, what="the sign-in page after expiry")
        assert "session has ended" in text(driver, "main")
        assert driver.execute_script("return sessionStorage.getItem('hitl.console.token')") is None
        screenshot(driver, "signin-expired")

        driver.get(f"{console.base}/console#token={token('sam', 'reviewer', ttl=-60)}")
        wait_for(driver, has_text("main", "Sign in to the reviewer console"), what="the sign-in page")
        assert "token expired" in text(driver, "main").lower() or "session has ended" in text(driver, "main")
        assert "#token" not in driver.current_url

        element(driver, "textarea[name=token]").send_keys(REVIEWER)
        button(driver, "Sign in").click()
        wait_for(driver, has_text(".topbar", "Signed in as rita (REVIEWER)"), what="signed in again")


async def test_admin_pauses_and_resumes_auto_approval_and_signs_out(console):
    """The model page: an ADMIN pauses auto-approval with a reason (required in the page) and resumes it; training
    that the service refuses says why; signing out forgets the token."""
    state = "{ autoApprovalState { paused reason changedBy } }"
    with chromium() as driver:
        sign_in(driver, console.base, ADMIN, "model")
        button(driver, "Pause auto-approval").click()
        button(driver, "Pause", "dialog[open]").click()
        wait_for(driver, has_text("dialog[open] .problem", "A reason is required"), what="the missing reason refused")
        element(driver, "dialog[open] textarea").send_keys("incident 42: bad model")
        button(driver, "Pause", "dialog[open]").click()
        wait_for(driver, has_text("#kill-switch + p", "Paused"), what="the paused state")
        assert gql(console, state)["autoApprovalState"] == {"paused": True, "reason": "incident 42: bad model", "changedBy": "adam"}
        assert "incident 42: bad model" in text(driver, ".page") and "adam" in text(driver, ".page")

        button(driver, "Resume auto-approval").click()
        element(driver, "dialog[open] textarea").send_keys("model retrained")
        button(driver, "Resume", "dialog[open]").click()
        wait_for(driver, has_text("#kill-switch + p", "On"), what="auto-approval on again")
        assert gql(console, state)["autoApprovalState"]["paused"] is False

        button(driver, "Train a new model now").click()  # too few labelled decisions here: the service refuses
        wait_for(driver, lambda d: find(d, ".train .problem") and d.find_element(By.CSS_SELECTOR, ".train .problem").text, what="training refused")
        button(driver, "Sign out").click()
        wait_for(driver, has_text("main", "You are signed out"), what="the sign-in page")
        assert driver.execute_script("return sessionStorage.getItem('hitl.console.token')") is None


PAYLOADS = {
    "script": "<script>window.__xss = 'script'</script>",
    "img": "<img src=x onerror=\"window.__xss = 'img'\">",
    "js_url": "javascript:window.__xss='url'",
}


async def test_untrusted_text_is_inert_and_shown_literally(console):
    """Scenario 5: a diff, package name and comment holding <script>, <img onerror> and javascript: payloads run
    nothing (the flag they would set stays unset) and appear as the literal text."""
    diff = f"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-{PAYLOADS['script']}\n+{PAYLOADS['img']}\n"
    patch = submit(console, 1, severity="HIGH", packageName=f"evil{PAYLOADS['img']}", diff=diff)
    gql(console, "mutation($id: ID!, $b: String!) { addComment(id: $id, body: $b) { id } }",
        {"id": patch["id"], "b": f"{PAYLOADS['js_url']} {PAYLOADS['script']} [click](javascript:alert(1))"}, as_=REVIEWER)
    with chromium() as driver:
        sign_in(driver, console.base, REVIEWER)
        wait_for(driver, lambda d: queue_ids(d) == [patch["id"]], what="the queue")
        assert PAYLOADS["img"] in text(driver, ".queue-table")
        open_patch(driver, console, patch)
        assert PAYLOADS["script"] in text(driver, ".diff") and PAYLOADS["img"] in text(driver, ".diff")
        assert PAYLOADS["img"] in text(driver, ".subtitle")
        assert PAYLOADS["js_url"] in text(driver, ".comment") and PAYLOADS["script"] in text(driver, ".comment")
        driver.get(f"{console.base}/console/activity")  # the feed shows the next event's package name
        wait_live(driver)  # the page was reloaded: an event before its cursor query would not be in its feed
        gql(console, "mutation($id: ID!) { escalatePatch(id: $id, reason: \"<img src=y onerror=window.__xss=9>\") { id } }", {"id": patch["id"]}, as_=REVIEWER)
        wait_for(driver, has_text(".feed", PAYLOADS["img"]), what="the event in the feed")
        open_patch(driver, console, patch)
        assert "<img src=y onerror=window.__xss=9>" in text(driver, ".notice")
        assert driver.execute_script("return window.__xss") is None
        assert driver.execute_script("return document.querySelectorAll('#app script, #app img[src=x], #app img[src=y], a[href^=\"javascript:\"]').length") == 0
        assert console_errors(driver) == []


EDITOR = "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"


def run_graphiql(driver, document: str) -> None:
    """Put the document in GraphiQL's editor and run it, once GraphiQL has taken the edit in (it stores it)."""
    driver.execute_script(f"{EDITOR}.setValue(arguments[0])", document)
    wait_for(driver, lambda d: d.execute_script("return localStorage.getItem('graphiql:query')") == document, what="GraphiQL's edit")
    click(driver, ".graphiql-execute-button")


def graphiql_response(driver) -> str:
    return driver.execute_script("return document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? ''")


async def test_graphiql_loads_offline_and_runs_a_query_and_a_subscription(console):
    """Scenario 6: with every origin but the service unreachable, GraphiQL loads from the service's own assets,
    runs a query, and runs a subscription over its WebSocket; nothing was requested from anywhere else."""
    with chromium(offline=True) as driver:
        sign_in(driver, console.base, VIEWER)  # GraphiQL takes the console session's token (same tab)
        driver.get(f"{console.base}/graphql")
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".graphiql-query-editor .CodeMirror"), timeout=20, what="GraphiQL's editor")
        headers = driver.execute_script("return [...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')].map((e) => e.CodeMirror.getValue()).join()")
        assert f"Bearer {VIEWER}" in headers  # the console's token, filled in
        run_graphiql(driver, "query Me { me { subject roles } }")
        wait_for(driver, lambda d: '"subject": "vera"' in graphiql_response(d), timeout=10, what="the query's result")
        screenshot(driver, "graphiql")

        run_graphiql(driver, "subscription Events { patchEvents { kind patch { patchId } } }")
        # The subscription starts live at the server's current event: an event from before it got there never
        # shows. Patches are submitted until one does (the first, unless the machine is slow).
        for attempt in range(10):
            sent = submit(console, 70 + attempt, severity="LOW")
            try:
                wait_for(driver, lambda d: f'"patchId": "{sent["patchId"]}"' in graphiql_response(d), timeout=2, what="the subscription's event")
                break
            except TimeoutException:
                continue
        else:
            raise AssertionError("no event reached GraphiQL's subscription")

        urls = [url for url in requested_urls(driver) if not url.startswith(("data:", "blob:", "chrome:", "about:"))]
        origin = console.base.replace("http://", "")
        assert urls and all(url.split("/")[2] == origin for url in urls), urls
        assert any(url.startswith(f"ws://{origin}/graphql") for url in urls) and any("/vendor/graphiql/graphiql.min.js" in url for url in urls)
        assert console_errors(driver) == []


async def test_server_restart_banner_reconnect_and_catch_up_with_missed_events(console_each_backend):
    """Scenario 7: the server goes away under an open console (SIGTERM: 1001); the banner shows; patches are
    submitted while it is down (straight into the database); it comes back on the same port; the console
    reconnects by itself, the banner goes, the queue shows them and patchEvents(after:) replays what it missed."""
    console = console_each_backend
    first = submit(console, 1, severity="HIGH")
    with chromium() as driver:
        sign_in(driver, console.base, REVIEWER)
        wait_for(driver, lambda d: queue_ids(d) == [first["id"]], what="the queue")
        driver.execute_script("window.__notReloaded = true")
        console.stop()
        wait_for(driver, lambda d: d.find_element(By.ID, "connection-banner").is_displayed(), timeout=10, what="the banner")
        assert "server is going away" in text(driver, "#connection-banner")
        screenshot(driver, "banner-disconnected")

        db = Database.from_url(console.database_url, pool_min=1, pool_max=2)
        try:
            missed = [await submit_directly(db, patch_id=f"MISSED-{next(_prefixes)}", severity="CRITICAL") for _ in range(2)]
        finally:
            await db.dispose()
        console.start()

        wait_for(driver, lambda d: not find(d, "#connection-banner"), timeout=20, what="the reconnect")
        wait_for(driver, lambda d: queue_ids(d)[:2] == [str(p.id) for p in missed], timeout=5, what="the missed patches in the queue")
        wait_for(driver, has_text(".toasts", "caught up on 2 events"), timeout=5, what="the catch-up notice")
        assert driver.execute_script("return window.__notReloaded") is True
        element(driver, "Activity", By.LINK_TEXT).click()
        wait_for(driver, has_text(".feed", missed[1].patch_id), what="the replayed events")
        caught_up = [row.text for row in find(driver, ".feed li.missed")]
        assert len(caught_up) == 2 and all("submitted" in row and "caught up" in row for row in caught_up)


async def test_network_loss_shows_the_banner_and_the_console_reconnects_by_itself(console):
    """The browser loses the network (DevTools' offline mode closes the page's WebSocket): the banner shows; back
    online, the console reconnects without a reload and catches up with what happened meanwhile."""
    first = submit(console, 1, severity="HIGH")
    with chromium() as driver:
        sign_in(driver, console.base, REVIEWER)
        wait_for(driver, lambda d: queue_ids(d) == [first["id"]], what="the queue")
        driver.execute_script("window.__notReloaded = true")
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        wait_for(driver, lambda d: d.find_element(By.ID, "connection-banner").is_displayed(), timeout=30, what="the banner")
        meanwhile = submit(console, 2, severity="CRITICAL")
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
        wait_for(driver, lambda d: not find(d, "#connection-banner"), timeout=20, what="the reconnect")
        wait_for(driver, lambda d: queue_ids(d) == [meanwhile["id"], first["id"]], timeout=5, what="the patch submitted meanwhile")
        wait_for(driver, has_text(".toasts", "caught up on 1 event"), timeout=5, what="the catch-up notice")
        assert driver.execute_script("return window.__notReloaded") is True


async def test_a_console_opened_while_the_api_cannot_be_reached_signs_in_by_itself_once_it_can(console):
    """The page loads but its first read (who is signed in) fails: it says so and keeps trying by itself, and signs
    in and goes live once the service answers, without a click. It used to wait for "Try again"."""
    patch = submit(console, 1, severity="HIGH")
    with chromium() as driver:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": [f"{console.base}/graphql"]})  # the API, not the assets
        driver.get(f"{console.base}/console/#token={REVIEWER}")
        wait_for(driver, has_text("main h1", "Cannot reach the service"), timeout=20, what="the problem")
        assert "Trying again by itself" in text(driver, "main")
        screenshot(driver, "cannot-reach-the-service")
        time.sleep(1)  # a retry or two fail as well
        assert "Cannot reach the service" in text(driver, "main h1")
        driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        wait_for(driver, has_text(".topbar", "Signed in as"), timeout=20, what="the signed-in header")
        wait_live(driver)
        wait_for(driver, lambda d: queue_ids(d) == [patch["id"]], what="the queue")
        assert [e for e in console_errors(driver) if "ERR_BLOCKED_BY_CLIENT" not in e] == []


async def test_a_connection_attempt_that_hangs_is_given_up_and_made_again(console):
    """The network drops and the next connection attempt is never answered (accepted, then silence): the console gives
    it up after CONNECT_TIMEOUT_MS (live.js) and connects again. graphql-ws alone waits for that attempt for ever."""
    patch = submit(console, 1, severity="HIGH")
    with StallingRelay(console.process.port) as relay, chromium() as driver:
        base = f"http://127.0.0.1:{relay.port}"
        sign_in(driver, base, REVIEWER)
        wait_for(driver, lambda d: queue_ids(d) == [patch["id"]], what="the queue")
        relay.hold_new()
        relay.drop_all()
        wait_for(driver, lambda d: d.find_element(By.ID, "connection-banner").is_displayed(), what="the banner")
        time.sleep(1)  # the attempt made after the drop is held
        relay.release_new()
        wait_live(driver)
        assert not find(driver, "#connection-banner")
        meanwhile = submit(console, 2, severity="CRITICAL")
        wait_for(driver, lambda d: queue_ids(d) == [meanwhile["id"], patch["id"]], what="a new patch, live")


async def test_on_a_phone_the_queue_and_the_groups_are_cards_that_do_not_scroll_sideways(console):
    """A narrow window (a phone): each row of the queue and of the groups is a card led by the patch (or fix), each cell
    under its column's name, and neither the page nor the table scrolls sideways (the 1180 px table did); so is each
    entry of a patch's audit trail (its details were squeezed into a column a few letters wide)."""
    patch = submit(console, 1, severity="HIGH")
    with chromium(width=420, height=900) as driver:
        for page in ("", "groups"):
            sign_in(driver, console.base, REVIEWER, page)
            wait_for(driver, lambda d: find(d, ".queue-table tbody tr td:not(.empty)"), what="a row")
            page_width, viewport, table_width, wrap_width = driver.execute_script(
                "const wrap = document.querySelector('.table-wrap');"
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth, wrap.scrollWidth, wrap.clientWidth]")
            assert page_width <= viewport and table_width <= wrap_width, (page, page_width, viewport, table_width, wrap_width)
            cells = driver.execute_script(
                "return [...document.querySelectorAll('.queue-table tbody tr:first-child td')]"
                ".filter((td) => getComputedStyle(td).display !== 'none')"
                ".map((td) => [td.className, getComputedStyle(td, '::before').content, td.getBoundingClientRect().top])")
            assert min(cells, key=lambda cell: cell[2])[0] == "patch-cell"  # the card's first line
            assert '"Priority"' in [label for _, label, _ in cells]
            assert not find(driver, ".queue-table thead th") or not find(driver, ".queue-table thead th")[0].is_displayed()
            screenshot(driver, f"phone-{page or 'queue'}")
        open_patch(driver, console, patch)
        wait_for(driver, lambda d: find(d, ".audit tbody tr"), what="the audit trail")
        trail_width, trail_wrap = driver.execute_script("const wrap = document.querySelector('.audit').closest('.table-wrap'); return [wrap.scrollWidth, wrap.clientWidth]")
        assert trail_width <= trail_wrap, (trail_width, trail_wrap)
        screenshot(driver, "phone-patch", full_page=True)
        assert console_errors(driver) == []


async def test_axe_finds_no_serious_or_critical_accessibility_violations(console):
    """Scenario 8: axe-core (vendored for the test) on the queue, patch and analytics pages, with realistic data.
    Also saves the screenshots the README shows (docs/screenshots/ are copies of two of them)."""
    seeded = console_data.seed(console.client, console.base, 24, prefix=f"A{next(_prefixes)}")
    target = seeded[3]
    gql(console, 'mutation($id: ID!) { addComment(id: $id, body: "Upstream changelog lists only the CVE fix.") { id } }', {"id": target["id"]}, as_=REVIEWER)
    gql(console, 'mutation($id: ID!) { approvePatch(id: $id, comment: "Wargaming reproduced and blocked the exploit.") { id } }', {"id": seeded[5]["id"]}, as_=REVIEWER)
    gql(console, "mutation($id: ID!) { rejectPatch(id: $id, reason: \"Breaks the client's TLS settings\") { id } }", {"id": seeded[6]["id"]}, as_=REVIEWER)
    pending = gql(console, "{ pendingPatches { totalCount } }")["pendingPatches"]["totalCount"]
    found = {}
    with chromium() as driver:
        sign_in(driver, console.base, LEAD)
        wait_for(driver, lambda d: len(queue_ids(d)) == pending, what="the queue")
        screenshot(driver, "queue")
        found["queue"] = axe_violations(driver)
        open_patch(driver, console, target)
        screenshot(driver, "patch", full_page=True)
        found["patch"] = axe_violations(driver)
        element(driver, "Analytics", By.LINK_TEXT).click()
        wait_for(driver, lambda d: len(find(d, ".charts svg")) == 3, what="the charts")
        screenshot(driver, "analytics", full_page=True)
        found["analytics"] = axe_violations(driver)
        element(driver, "Model", By.LINK_TEXT).click()
        wait_for(driver, has_text(".page", "Auto-approval"), what="the model page")
        screenshot(driver, "model")
        assert console_errors(driver) == []
    assert found == {"queue": [], "patch": [], "analytics": []}, found


async def test_grouped_queue_and_a_group_decision_that_shows_what_it_skips(console):
    """Issue 19: the queue grouped by fix; the group dialog lists every pending member and, before the click, which
    will be approved and which skipped (needs a lead; submitted by the reviewer), as the service's groupDecisionPreview
    says; a group that grew meanwhile is not decided but shown again; the click decides exactly what was shown."""
    fix = {"cveId": "CVE-2026-31337", "packageName": "demo-group-lib", "currentVersion": "4.1.0", "targetVersion": "4.1.2",
           "mlPrediction": None, "wargaming": None, "severity": "HIGH"}
    plain = [submit(console, n, **fix) for n in (1, 2)]
    needs_lead = submit(console, 3, **fix, affectedSystems=[f"system-{i}" for i in range(12)])
    own_data = console_data.patch_input(4, random.Random(4), prefix=f"T{next(_prefixes)}", **fix)
    own = gql(console, console_data.SUBMIT, {"i": own_data}, as_=token("rita", "service"))["submitPatch"]["patch"]
    with chromium() as driver:
        sign_in(driver, console.base, REVIEWER, "groups")
        wait_for(driver, has_text(".groups-table", "demo-group-lib"), what="the group row")
        assert "4 of 4" in text(driver, ".groups-table")
        button(driver, "Decide the group demo-group-lib 4.1.2").click()
        wait_for(driver, lambda d: len(find(d, "dialog[open] .group-members tbody tr")) == 4, what="the four members")
        assert "2 will be approved, 2 skipped" in text(driver, "dialog[open] .group-summary")
        rows = {row.find_element(By.CSS_SELECTOR, "th").text: row.text for row in find(driver, "dialog[open] .group-members tbody tr")}
        assert "needs a LEAD or ADMIN" in rows[needs_lead["patchId"]] and "submitter of a patch cannot approve it" in rows[own["patchId"]]
        assert all(rows[p["patchId"]].endswith("approved") for p in plain)
        screenshot(driver, "group-decision")
        plain.append(submit(console, 5, **fix))  # the group grows while the dialog is open: nothing is applied
        button(driver, "Approve 2", "dialog[open]").click()
        wait_for(driver, has_text("dialog[open] .problem", "Not applied"), what="the changed-group notice")
        wait_for(driver, lambda d: len(find(d, "dialog[open] .group-members tbody tr")) == 5, what="the five members")
        assert "3 will be approved, 2 skipped" in text(driver, "dialog[open] .group-summary")
        screenshot(driver, "group-decision-changed")
        assert all(gql(console, DETAIL, {"id": p["id"]})["patch"]["status"] == "PENDING" for p in plain)
        button(driver, "Approve 3", "dialog[open]").click()
        wait_for(driver, has_text(".toasts", "3 decided, 2 skipped"), what="the group decision notice")
        assert console_errors(driver) == []
    statuses = {p["patchId"]: gql(console, DETAIL, {"id": p["id"]})["patch"]["status"] for p in (*plain, needs_lead, own)}
    assert statuses == {**{p["patchId"]: "APPROVED" for p in plain}, needs_lead["patchId"]: "PENDING", own["patchId"]: "PENDING"}


def test_a_console_reloaded_during_its_first_load_after_a_start_still_shows_the_queue(browser_tools, sqlite_template, tmp_path):
    """A reviewer opens the console on a server that just started and reloads at once: the reloaded page must show
    the queue. It stayed on "Connecting…" with an empty queue when the first page's read was cancelled by the
    departing page (graphql_api.live.hub.Hub.subscribe_queue)."""
    shutil.copyfile(sqlite_template, tmp_path / "hitl.db")
    for console in serve(f"sqlite+aiosqlite:///{tmp_path / 'hitl.db'}", tmp_path):
        patch = submit(console, 1, severity="HIGH")
        with chromium() as driver:
            sign_in(driver, console.base, REVIEWER)
            driver.get(f"{console.base}/console/")  # at once: the first page may still be being read
            wait_live(driver)
            wait_for(driver, lambda d: queue_ids(d) == [patch["id"]], what="the queue after the reload")
            assert "Connecting" not in text(driver, ".page-head")


async def test_a_failed_first_read_is_retried_until_the_console_is_live(browser_tools, pg_template, tmp_path):
    """The console's first read (where its event stream starts) fails while the service cannot read the audit log: the
    page says so and keeps trying, and goes live once the read succeeds. It used to stay "Offline" for good."""
    name = f"hitl_console_retry_{uuid.uuid4().hex[:8]}"
    await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        for console in serve(pg_url(name), tmp_path, HITL_DB_STATEMENT_TIMEOUT_SECONDS="1"):
            locker = await asyncpg.connect(pg_dsn(name))
            try:
                lock = locker.transaction()
                await lock.start()
                await locker.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")  # its reads time out after 1 s
                with chromium() as driver:
                    driver.get(f"{console.base}/console/#token={REVIEWER}")
                    wait_for(driver, has_text(".topbar", "Signed in as"), timeout=20, what="the signed-in header")
                    wait_for(driver, has_text("#connection-banner", "the service cannot be reached"), timeout=20, what="the banner")
                    assert text(driver, ".conn") == "Reconnecting…"
                    await lock.rollback()
                    wait_live(driver)
                    assert not find(driver, "#connection-banner")
            finally:
                await locker.close()
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
