"""The webhooks page in a real browser: an ADMIN registers an endpoint (a refused URL says why, the secret is shown
once), sees its delivery log fill, and deletes it; anyone else is told the page is for ADMINs."""

import random

from tests.support import console_data
from tests.support.browser import axe_violations, button, chromium, click, element, find, has_text, sign_in, text, wait_for
from tests.support.server import ADMIN, SERVICE, VIEWER

ENDPOINTS = "{ webhookEndpoints { id url } }"
TARGET = "https://1.1.1.1/hook"  # an address literal: no DNS; unreachable here, so its deliveries retry


def gql(console, query: str, variables: dict | None = None, *, as_: str = ADMIN) -> dict:
    return console_data.gql(console.client, console.base, query, variables, token=as_)


async def test_admin_creates_an_endpoint_reads_its_log_and_deletes_it(console):
    with chromium() as driver:
        sign_in(driver, console.base, VIEWER, "webhooks")
        wait_for(driver, has_text("main", "Only an ADMIN can manage webhooks"), what="the refusal for a VIEWER")

    with chromium() as driver:
        sign_in(driver, console.base, ADMIN, "webhooks")
        url = element(driver, "input[name=url]")
        url.send_keys("https://127.0.0.1/hook")
        button(driver, "Create").click()
        wait_for(driver, has_text("form .problem", "non-public address"), what="the loopback URL refused")
        url.clear()
        url.send_keys(TARGET)
        button(driver, "Create").click()
        wait_for(driver, has_text("#webhook-secret-value", "whsec_"), what="the secret, shown once")
        [endpoint] = [item for item in gql(console, ENDPOINTS)["webhookEndpoints"] if item["url"] == TARGET]
        wait_for(driver, has_text("#webhook-endpoints", TARGET), what="the endpoint listed")
        assert not axe_violations(driver)
        button(driver, "Done").click()

        patch = gql(console, console_data.SUBMIT, {"i": console_data.patch_input(1, random.Random(1), prefix="WH")}, as_=SERVICE)
        click(driver, "#webhook-endpoints tbody button.link")

        def retried(d) -> bool:  # the first attempt ends within the 5 s timeout; refresh the log until it shows
            for candidate in find(d, ".card .page-head button.link"):
                candidate.click()
            return "RETRYING" in text(d, "body") and "SUBMITTED" in text(d, "body")

        wait_for(driver, retried, timeout=20, what="a retrying delivery of the SUBMITTED event")
        assert patch["submitPatch"]["patch"]["id"]
        driver.execute_script("window.confirm = () => true")
        button(driver, "Delete").click()
        wait_for(driver, lambda d: TARGET not in text(d, "#webhook-endpoints"), what="the endpoint gone")
    assert [item for item in gql(console, ENDPOINTS)["webhookEndpoints"] if item["id"] == endpoint["id"]] == []
