"""Fixtures for browser tests: Debian's Chromium through Selenium and Debian's chromedriver (never a
downloaded browser build), a `Page` helper that waits on page state, and a screenshot folder per
test under test-artifacts/browser/ that is kept, with the failing screen, page and browser log."""
import http.server
import io
import json
import pathlib
import re
import shutil
import threading
import time

import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1440,1000"]
WAIT = 90  # seconds; the machine is shared and slow, every wait is on page state


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Let fixtures know whether the test failed (for the last screen and the page's HTML)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


class Page:
    """One Chromium tab and what a person does with it; every wait is on what the page shows."""

    def __init__(self, driver, shots: pathlib.Path):
        from selenium.common.exceptions import ElementNotInteractableException, StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.shots, self.step = driver, shots, 0
        self.wait = WebDriverWait(driver, WAIT, poll_frequency=0.25,
                                  ignored_exceptions=(ElementNotInteractableException, StaleElementReferenceException))

    # --- looking ---------------------------------------------------------------------------------
    def shot(self, name: str) -> pathlib.Path:
        """A numbered screenshot of what a person sees at this step."""
        self.step += 1
        path = self.shots / f"{self.step:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def text(self) -> str:
        return self.driver.find_element("tag name", "body").text

    def see(self, text: str, timeout: float = WAIT):
        """Wait until a visible element shows `text`; return the innermost one."""
        # The deepest elements holding the whole text (React may split it into several text nodes).
        lit = xpath_literal(text)
        xpath = f"//*[contains(normalize-space(.), {lit}) and not(*[contains(normalize-space(.), {lit})])]"
        return self.until(lambda: next(iter(self.visible(xpath, by="xpath")), None), f"{text!r} never shown",
                          timeout)

    def until(self, predicate, message: str, timeout: float = WAIT):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(lambda d: predicate(), message)

    def visible(self, css: str, by: str = "css selector") -> list:
        from selenium.common.exceptions import StaleElementReferenceException

        out = []
        for e in self.driver.find_elements(by, css):
            try:
                if e.is_displayed() and e.size["width"] > 0:
                    out.append(e)
            except StaleElementReferenceException:
                pass
        return out

    # --- doing -----------------------------------------------------------------------------------
    def open(self, url: str):
        self.driver.get(url)

    def click_now(self, element) -> bool:
        from selenium.common.exceptions import (
            ElementClickInterceptedException,
            ElementNotInteractableException,
            StaleElementReferenceException,
        )

        try:
            element.click()
            return True
        except (ElementClickInterceptedException, ElementNotInteractableException, StaleElementReferenceException):
            return False

    def click(self, css: str, message: str | None = None):
        """Click the first visible match, retrying while the page is still laying it out."""
        self.until(lambda: any(self.click_now(e) for e in self.visible(css)[:1]),
                   message or f"nothing clickable: {css}")

    def button(self, text: str, timeout: float = WAIT):
        """The enabled button whose text is `text`."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait

        xpath = f"//button[normalize-space()={xpath_literal(text)} and not(@disabled)]"
        return WebDriverWait(self.driver, timeout, poll_frequency=0.25).until(
            EC.element_to_be_clickable((By.XPATH, xpath)), f"no enabled button {text!r}")

    def press(self, text: str):
        """Click the button named `text`, again if a re-render swallowed the first click."""
        self.until(lambda: self.click_now(self.button(text)), f"cannot press {text!r}")

    def type(self, name: str, text: str):
        """Select-all and type over, as a person does (WebDriver's clear() bypasses React's state).
        A form that fills in its default after the field appeared gets typed over again."""
        from selenium.webdriver.common.keys import Keys

        field = self.until(lambda: next(iter(self.visible(f"[name='{name}']")), None), f"no field {name}")

        def reads_text():
            if field.get_attribute("value") == text:
                return True
            field.send_keys(Keys.CONTROL, "a")
            field.send_keys(Keys.BACKSPACE, text)
            return False
        self.until(reads_text, f"{name} does not read {text!r}")
        return field

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)


def xpath_literal(text: str) -> str:
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in text.split("'")) + ")"


def _chromium(profile: pathlib.Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def browser_shots(request) -> pathlib.Path:
    """test-artifacts/browser/<test name>/: emptied at the start of the test, kept afterwards."""
    folder = SHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def page(request, tmp_path, browser_shots):
    """A fresh headless Chromium (own profile) for one test. On failure the last screen, the page's
    HTML and the browser console go next to the step screenshots."""
    driver = _chromium(tmp_path / "chromium-profile")
    driver.set_page_load_timeout(WAIT * 2)
    tab = Page(driver, browser_shots)
    try:
        yield tab
    finally:
        failed = any(getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
                     for when in ("setup", "call"))
        try:
            if failed:
                driver.save_screenshot(str(browser_shots / "FAILED-last-screen.png"))
                (browser_shots / "FAILED-page.html").write_text(driver.page_source)
            (browser_shots / "browser-console.json").write_text(json.dumps(driver.get_log("browser"), indent=1))
        except Exception as exc:  # a dead browser must not hide the test's own failure
            (browser_shots / "FAILED-artifacts.txt").write_text(repr(exc))
        driver.quit()


# --- files that try to run script on Label Studio's origin ----------------------------------------------
class Beacon(http.server.ThreadingHTTPServer):
    """A server on loopback that hostile files call when their script runs: every call is kept."""

    def __init__(self):
        self.hits: list[str] = []
        beacon = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                beacon.hits.append(self.path)
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def wait_for_calls(self, seconds: float = 3.0) -> list:
        """A script runs by its page's load event; its calls get a few seconds more to arrive."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.hits:
            time.sleep(0.1)
        return self.hits


@pytest.fixture
def beacon():
    server = Beacon()
    yield server
    server.shutdown()
    server.server_close()


def hostile_files(beacon_port: int) -> dict:
    """{path: bytes} for a Source repo: an HTML page and an SVG image whose scripts set the page's
    title to "pwned", set `window.pwned` and call the beacon, and a harmless PNG."""
    def script(name):
        return (f"document.title = 'pwned'; window.pwned = true; "
                f"new Image().src = 'http://127.0.0.1:{beacon_port}/{name}'; "
                f"fetch('http://127.0.0.1:{beacon_port}/{name}-fetch');")
    page = (f"<!doctype html><html><head><title>page</title><script>{script('html')}</script></head>"
            "<body>a page</body></html>")
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><title>vector</title>'
           f'<rect width="40" height="30" fill="blue"/><script>{script("svg")}</script></svg>')
    image = io.BytesIO()
    Image.new("RGB", (40, 30), "red").save(image, "PNG")
    return {"hostile/page.html": page.encode(), "hostile/vector.svg": svg.encode(), "images/cat.png": image.getvalue()}


def image_shown(driver, url: str) -> bool:
    """An <img> of the page shows `url`, decoded (naturalWidth > 0)."""
    return driver.execute_script(
        "return Array.from(document.images).some(i => i.src.endsWith(arguments[0]) && i.complete"
        " && i.naturalWidth > 0)", url)
