"""A real browser for the console tests: Debian's chromium driven by Selenium through chromium-driver
(scripts/install-test-tools.sh installs both), headless, with a fresh profile each time; and what the tests
read from it (waits, requests made, accessibility, screenshots)."""

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
)
# Everything but the service (on 127.0.0.1) is unreachable: no name resolves, and any other address goes to a proxy
# on the discard port, where nothing listens (chromium never sends loopback traffic through a proxy).
OFFLINE_FLAGS = ("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--proxy-server=http://127.0.0.1:9")
SCREENSHOTS = ROOT / "tests/console/screenshots"  # git-ignored; the README's two come from here (docs/screenshots)
AXE = ROOT / "tests/console/vendor/axe-core/axe.min.js"


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@contextmanager
def chromium(*, offline: bool = False, width: int = 1440, height: int = 1000) -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="hitl-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, *(OFFLINE_FLAGS if offline else ()), f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float = 10, what: str = "") -> object:
    """The condition's first truthy value; elements replaced by a re-render while being read count as not yet."""

    def check(d: WebDriver) -> object:
        try:
            return condition(d)
        except (StaleElementReferenceException, WebDriverException):
            return False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(check, message=f"waited {timeout} s for {what or condition}")
    except TimeoutException:
        screenshot(driver, f"timeout-{re.sub(r'[^a-z0-9]+', '-', (what or 'condition').lower()).strip('-')[:60]}")  # what the page showed
        raise


def click(driver: WebDriver, selector: str, timeout: float = 10) -> None:
    """Click the element, found again if a re-render replaced it in between."""
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector).click() or True, timeout, what=f"a click on {selector}")


def element(driver: WebDriver, selector: str, by: str = By.CSS_SELECTOR, timeout: float = 10) -> WebElement:
    """The displayed element, waited for: a dialog or page may still be rendering."""
    return wait_for(driver, lambda d: next((e for e in d.find_elements(by, selector) if e.is_displayed()), False), timeout, what=selector)


def text(driver: WebDriver, selector: str = "body") -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


def has_text(selector: str, fragment: str) -> Callable[[WebDriver], bool]:
    return lambda d: any(fragment in element.text for element in d.find_elements(By.CSS_SELECTOR, selector))


def find(driver: WebDriver, selector: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def button(driver: WebDriver, label: str, within: str = "body", timeout: float = 10) -> WebElement:
    """The visible button whose text (or accessible name) is `label`, waited for: a dialog or page may still be rendering."""

    def visible(d: WebDriver) -> WebElement | bool:
        for element in d.find_elements(By.CSS_SELECTOR, f"{within} button"):
            if element.is_displayed() and label in (element.text.strip(), element.get_attribute("aria-label")):
                return element
        return False

    return wait_for(driver, visible, timeout, what=f"a button {label!r} in {within}")


def buttons(driver: WebDriver, within: str = "body") -> list[str]:
    return [element.text.strip() for element in driver.find_elements(By.CSS_SELECTOR, f"{within} button") if element.is_displayed()]


def sign_in(driver: WebDriver, base: str, token: str, path: str = "") -> None:
    """Open the console with the token in the fragment (as the dev server's links do) and wait until it is live."""
    driver.get(f"{base}/console/{path}#token={token}")
    wait_for(driver, has_text(".topbar", "Signed in as"), timeout=20, what="the signed-in header")
    wait_live(driver)


def wait_live(driver: WebDriver) -> None:
    """Wait until the console's WebSocket is connected: from then on it receives every new event (it asked for
    the events after the latest cursor before connecting), so a mutation made now shows up in the page."""
    try:
        wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, ".conn").text == "Live", timeout=20, what="the live connection")
    except TimeoutException as timeout:
        raise TimeoutException(f"{timeout.msg}; the page showed:\n{page_state(driver)}") from None


def page_state(driver: WebDriver) -> str:
    """What a failed wait needs to be understood from a CI log: the connection state, the banner, and what the page
    logged and requested (not the browser's own chrome:// pages)."""
    shown = {selector: [e.text for e in find(driver, selector)] for selector in (".conn", "#connection-banner", ".page-head", ".toasts")}
    logged = [f"{entry['level']} {entry['message']}" for entry in driver.get_log("browser")]
    return "\n".join([f"url {driver.current_url}", *(f"{k}: {v}" for k, v in shown.items()), *logged, *(f"requested {url}" for url in requested_urls(driver) if url.startswith(("http", "ws")))])


def requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the page asked for since the last call (HTTP requests and WebSockets), from the DevTools log."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def console_errors(driver: WebDriver) -> list[str]:
    """Errors the page logged (CSP and Trusted Types violations, uncaught exceptions) since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def axe_violations(driver: WebDriver, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict]:
    """axe-core (vendored, tests/console/vendor) run inside the page: its violations of the given impacts."""
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then((r) => done(r.violations), (e) => done({error: String(e)}));"
    )
    assert not (isinstance(result, dict) and "error" in result), result
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result
        if v["impact"] in impacts
    ]


def screenshot(driver: WebDriver, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = driver.get_window_size()
    if full_page:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(size["width"], min(height + 140, 6000))
    driver.save_screenshot(str(path))
    if full_page:
        driver.set_window_size(size["width"], size["height"])
    return path
