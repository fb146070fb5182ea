""""Who labeled that image?" as a user asks it: real Chromium on real Label Studio (with the
Pachyderm storage app, the mount server and the embedded PFS server); from the Data Manager a task
is opened, and one click on "Task history" shows who labeled it beside the task, then on its own page
in which version, and its source."""
import json
import uuid

import pytest
from pachyderm_sdk.api import pfs
from selenium.webdriver.common.by import By

from .storage_page import click_visible

pytestmark = pytest.mark.browser

TEXT_CONFIG = ('<View><Text name="text" value="$text"/><Choices name="choice" toName="text">'
               '<Choice value="cat"/><Choice value="dog"/></Choices></View>')


def test_one_click_from_an_open_task_shows_who_labeled_it(page, wizard_labelstudio, shared_pfs_server):
    ls = wizard_labelstudio
    pach = shared_pfs_server.client()
    images, labels = f"hist-src-{uuid.uuid4().hex[:8]}", f"hist-labels-{uuid.uuid4().hex[:8]}"
    for repo in (images, labels):
        pach.pfs.create_repo(repo=pfs.Repo.from_uri(f"default/{repo}"))
    with pach.pfs.commit(branch=pfs.Branch.from_uri(f"default/{images}@master")) as commit:
        commit.put_file_from_bytes(path="kitten.json", data=json.dumps({"text": "a kitten on a sofa"}).encode())
    project = ls.create_project(title=f"history {uuid.uuid4().hex[:6]}", label_config=TEXT_CONFIG)
    source = ls.create_source(project["id"], repo=images)
    assert ls.sync(source["id"])["last_sync_count"] == 1
    task = ls.tasks(project["id"])[0]
    annotation = ls.annotate(task["id"])
    target = ls.create_target(project["id"], repo=labels)
    ls.wait_storage(target["id"], target=True)
    version = ls.sync(target["id"], target=True)["meta"]["commit"]
    assert version

    driver = page.driver
    driver.get(f"{page.url}/projects/{project['id']}/data")
    row = "//*[contains(text(), 'a kitten on a sofa')]"
    page.wait.until(lambda d: click_visible(d, row), "the task's row never showed in the Data Manager")
    page.wait.until(lambda d: f"task={task['id']}" in d.current_url, "opening the task did not show it")
    button = page.wait.until(lambda d: visible(d, ".lsf-menu-header #pachstudio-task-history"),
                             "no Task history button")
    driver.save_screenshot(str(page.screenshots / "task-history-button.png"))

    button.click()  # the history, beside the task

    panel = page.wait.until(lambda d: visible(d, "#pachstudio-history-panel"), "the history panel never opened")
    page.wait.until(lambda d: f"Annotation {annotation['id']} by admin@example.com" in panel.text,
                    "the panel never showed who labeled the task")
    driver.save_screenshot(str(page.screenshots / "task-history-panel.png"))
    assert f"Task {task['id']} history" in panel.text
    first = panel.find_element(By.CSS_SELECTOR, ".first-version code")
    assert first.text == version[:8] and first.get_attribute("title") == version

    # and on a page of its own
    panel.find_element(By.ID, "pachstudio-history-page-link").click()
    page.wait.until(lambda d: "/pachyderm/tasks/" in d.current_url
                    and d.find_elements(By.CSS_SELECTOR, "#pachstudio-history .annotation-title"),
                    "the history page never opened")
    driver.save_screenshot(str(page.screenshots / "task-history-page.png"))
    text = driver.find_element(By.TAG_NAME, "body").text
    assert f"Task {task['id']} history" in text
    assert f"Annotation {annotation['id']} by admin@example.com" in text
    first = driver.find_element(By.CSS_SELECTOR, "#pachstudio-history .first-version code")
    assert first.text == version[:8] and first.get_attribute("title") == version
    source = driver.find_element(By.ID, "source").get_attribute("title")
    assert source == f"default/{images}@{task['data']['pachyderm_commit']}:/kitten.json"
    back = driver.find_element(By.ID, "back-to-task").get_attribute("href")
    assert back.endswith(f"/projects/{project['id']}/data?task={task['id']}")

    # From the project's Data Manager, the Target's Versions page is one click away too.
    driver.get(f"{page.url}/projects/{project['id']}/data")
    versions = page.wait.until(lambda d: visible(d, ".lsf-menu-header .pachstudio-versions-link"), "no Versions link")
    assert versions.text == f"Versions: {target['title'] or 'Target ' + str(target['id'])}"
    versions.click()
    page.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-commit='{version}']"),
                    "the Versions link did not open the Target's versions")
    assert driver.current_url.endswith(f"/pachyderm/targets/{target['id']}/versions")


def visible(driver, css):
    for element in driver.find_elements(By.CSS_SELECTOR, css):
        if element.is_displayed() and element.size["width"] > 0:
            return element
    return None


