"""Fixtures for browser tests: Debian's Chromium through Selenium and Debian's chromedriver (never a
downloaded browser build), a `Page` helper that waits on page state, and a screenshot folder per
test under test-artifacts/browser/ that is kept, with the failing screen, page and browser log."""
import json
import pathlib
import re
import shutil

import pytest

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
