"""A page driver for Label Studio's Settings > Cloud Storage screens, waiting on page state."""
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    WebDriverException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 60


def click_visible(driver, xpath) -> bool:
    """Clicks the first shown element `xpath` finds; False (try again) while none is, or while the
    page replaces it under the click: meant for `WebDriverWait.until`."""
    for element in driver.find_elements(By.XPATH, xpath):
        try:
            if element.is_displayed():
                element.click()
                return True
        except WebDriverException:
            return False
    return False


class StoragePage:
    """Drives Settings > Cloud Storage > Add Source/Target Storage: the wizard or the older form."""

    def __init__(self, driver, labelstudio, screenshots, host="127.0.0.1"):
        # Cookies ignore ports: a second Label Studio gets another host name for its own session.
        self.driver, self.ls, self.screenshots = driver, labelstudio, screenshots
        self.url = labelstudio.url.replace("127.0.0.1", host)
        self.wait = WebDriverWait(driver, WAIT, ignored_exceptions=(ElementNotInteractableException,))

    def login(self):
        self.driver.get(self.url + "/user/login/")
        # signed in already (the wizard tests' session stays in): Label Studio leaves the login page
        form = self.wait.until(lambda d: d.find_elements(By.NAME, "email") or "/user/login" not in d.current_url)
        if form is True:
            return
        form[0].send_keys("admin@example.com")
        self.driver.find_element(By.NAME, "password").send_keys("pass1234")
        self.driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
        self.wait.until(lambda d: "/user/login" not in d.current_url)

    def open(self, project_id, target, ready="[data-testid=storage-provider-s3]"):
        """The add button moves from the empty-state card to the column header once storages exist."""
        self.driver.get(f"{self.url}/projects/{project_id}/settings/storage")
        kind = "target" if target else "source"

        def form_shown(driver):
            # The modal fades in: wait until it shows text, not just exists. A click that lands
            # before React wires the button up is repeated.
            shown = driver.find_elements(By.CSS_SELECTOR, ready)
            if shown and (shown[0].text or shown[0].tag_name == "select"):
                return True
            if not shown:
                self.click_now(f"[data-testid^=add-{kind}-storage-button]")
            return False
        self.wait.until(form_shown, f"Add {kind} storage never showed its form")

    def click_now(self, css) -> bool:
        for element in self.driver.find_elements(By.CSS_SELECTOR, css):
            if element.is_displayed() and element.size["width"] > 0:
                try:
                    element.click()
                    return True
                except (ElementNotInteractableException, ElementClickInterceptedException):
                    return False
        return False

    def click(self, css):
        """Click the first visible match, retrying while the page is still laying it out."""
        self.wait.until(lambda d: self.click_now(css), f"nothing clickable matches {css}")

    def button(self, text):
        xpath = f"//button[normalize-space()='{text}' and not(@disabled)]"
        return self.wait.until(EC.element_to_be_clickable((By.XPATH, xpath)), f"no enabled button {text!r}")

    def providers(self) -> list[str]:
        tiles = self.driver.find_elements(By.CSS_SELECTOR, "[data-testid^=storage-provider-]")
        return [t.get_attribute("data-testid").removeprefix("storage-provider-") for t in tiles]

    def choose_pachyderm(self):
        self.click("[data-testid=storage-provider-pachyderm]")
        self.button("Next").click()
        self.wait.until(EC.visibility_of_element_located((By.NAME, "repo")))

    def inputs(self) -> dict:
        """Named text inputs of the open form, in page order."""
        return {e.get_attribute("name"): e for e in self.driver.find_elements(By.CSS_SELECTOR, "input[name]")
                if e.get_attribute("type") in ("text", "password", None, "") and e.is_displayed()}

    def type(self, name, text):
        """Select-all and type over, as a person does: WebDriver's clear() bypasses React's state."""
        field = self.driver.find_element(By.NAME, name)
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(Keys.BACKSPACE, text)
        self.wait.until(lambda d: field.get_attribute("value") == text, f"{name} does not read {text!r}")

    def select(self, name, value):
        self.click(f"button[data-name={name}]")
        self.click(f"[data-testid=select-option-{value}]")
        self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR,
                                                        f"button[data-name={name}][data-value='{value}']")))

    def see(self, text):
        xpath = f"//*[contains(normalize-space(text()), '{text}')]"
        return self.wait.until(EC.visibility_of_element_located((By.XPATH, xpath)), f"{text!r} never shown")

    def modal_closed(self):
        self.wait.until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "[data-testid^=storage-provider-],"
                                                                             "input[name=repo]")))

    def shot(self, name):
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
