"""The Versions page in Debian's Chromium, on the built image (issue 17): from the Target card to
the page (inside Label Studio's frame), compare two versions, tag one and restore one from its
row's menu, and see the Data Manager change.

Two versions are made the way the API allows (a project, tasks, annotations, two Target Syncs);
everything after that is done in the browser, and checked through the pachyderm SDK and the API.
Screenshots of every step: test-artifacts/browser/<test name>/.
"""
import time

import pytest
from pachyderm_sdk.api import pfs
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select
from test_appliance_journey import Journey

from plugins.image import sdk_client

pytestmark = [pytest.mark.image, pytest.mark.browser, pytest.mark.timeout(900)]
TARGET_TITLE = "Labels with versions"


def sync(api, target_id) -> dict:
    api.call("POST", f"/api/storages/export/pachyderm/{target_id}/sync")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        storage = api.call("GET", f"/api/storages/export/pachyderm/{target_id}")
        if storage["status"] in ("completed", "failed", "completed_with_errors"):
            assert storage["status"] == "completed", storage
            return storage
        time.sleep(0.3)
    raise TimeoutError(f"Target {target_id} Sync did not finish")


def choice(annotation) -> str:
    return annotation["result"][0]["value"]["choices"][0]


def test_a_person_compares_tags_and_restores_versions_of_a_target(data_volume, appliance_factory, page):
    app = appliance_factory(volume=data_volume).wait_healthy()
    url, api = app.url, app.api()
    client = sdk_client(app.pachd_address)
    client.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))

    # Two versions: v1 labels task 1 "cat"; v2 relabels it "dog" and labels task 2.
    project = api.create_project("Versions journey")["id"]
    api.call("POST", f"/api/projects/{project}/import", json=[{"text": "first"}, {"text": "second"}])
    first, second = sorted(t["id"] for t in api.tasks(project))
    annotation = api.annotate(first, "cat")
    target = api.call("POST", "/api/storages/export/pachyderm",
                      json={"project": project, "title": TARGET_TITLE, "repo": "labels", "prefix": "ann"})
    deadline = time.monotonic() + 120
    while api.call("GET", f"/api/storages/export/pachyderm/{target['id']}")["status"] != "completed":
        assert time.monotonic() < deadline, "the new Target never finished staging"
        time.sleep(0.3)
    v1 = sync(api, target["id"])["last_commit"]
    api.call("PATCH", f"/api/annotations/{annotation['id']}",
             json={"result": [{"from_name": "label", "to_name": "text", "type": "choices",
                               "value": {"choices": ["dog"]}}]})
    api.annotate(second, "dog")
    v2 = sync(api, target["id"])["last_commit"]
    assert v1 and v2 and v1 != v2

    journey = Journey(page, url)
    p, driver = page, page.driver
    journey.login()

    # 1. The Target card links to the Versions page.
    p.open(f"{url}/projects/{project}/settings/storage")
    p.see("Add Source Storage")
    card = p.until(lambda: journey.card(TARGET_TITLE), "no Target card")
    link = p.until(lambda: card.find_elements("css selector", "a[href$='/versions']"), "no Versions link on the card")
    assert link[0].text == "Open the Versions page"
    journey.step("target-card-versions-link")
    versions_url = f"/pachyderm/targets/{target['id']}/versions"

    def opened() -> bool:  # the card re-renders as its status refreshes: a click it swallowed is made again
        if driver.current_url.endswith(versions_url):
            return True
        links = journey.card(TARGET_TITLE).find_elements("css selector", "a[href$='/versions']")
        links and p.click_now(links[0])
        return driver.current_url.endswith(versions_url)

    p.until(opened, "the link did not open the Versions page")
    rows = p.until(lambda: p.visible("#versions-table tbody tr[data-commit]"), "no versions listed")
    listed = [r.get_attribute("data-commit") for r in rows]
    assert listed[:2] == [v2, v1]
    row_v1 = driver.find_element("css selector", f"tr[data-commit='{v1}']")
    assert row_v1.find_element("css selector", ".added").text == "1"
    assert "admin@example.com" in row_v1.find_element("css selector", ".annotators").text
    p.see("nothing staged since the last Sync")
    journey.step("versions-page")

    # 2. Compare v1 with v2: task 1 changed, task 2 gained, each linked to its task.
    Select(driver.find_element("id", "compare-from")).select_by_value(v1)
    Select(driver.find_element("id", "compare-to")).select_by_value(v2)
    p.click("#compare-button")
    counts = p.until(lambda: p.visible("#diff-counts"), "no diff shown")[0]
    assert "1 gained" in counts.text and "1 changed" in counts.text and "0 lost" in counts.text
    links = {a.get_attribute("data-task") for a in p.visible("#diff-result li.task")}
    assert links == {str(first), str(second)}
    hrefs = [a.get_attribute("href") for a in p.visible("#diff-result li.task a")]
    assert f"{url}/projects/{project}/data?task={second}" in hrefs
    journey.step("compare-v1-v2")
    driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)  # closes the comparison's dialog
    p.until(lambda: not driver.find_elements("id", "diff-dialog"), "the comparison did not close")

    # 3. Tag v1 (its row's menu): a Pachyderm branch at that commit, shown on its row.
    p.click(f"tr[data-commit='{v1}'] .row-menu")
    p.click(".ps-menu .tag-menu-item")
    p.until(lambda: p.visible("#tag-dialog #tag-name"), "no tag dialog")
    Select(driver.find_element("id", "tag-commit")).select_by_value(v1)
    name = driver.find_element("id", "tag-name")
    name.send_keys("before synthetic")  # a name Pachyderm rejects: the rule is shown, nothing made
    p.click("#tag-button")
    p.see("only letters, digits, underscores and dashes")
    name.clear()
    name.send_keys("before-synthetic")
    p.click("#tag-button")
    p.see(f"Tagged {v1[:8]} as before-synthetic")
    p.until(lambda: "before-synthetic" in driver.find_element("css selector", f"tr[data-commit='{v1}'] .tags").text,
            "the tag is not on v1's row")
    assert client.pfs.inspect_branch(branch=pfs.Branch.from_uri("labels@before-synthetic")).head.id == v1
    branches = {b.branch.name for b in client.pfs.list_branch(repo=pfs.Repo.from_uri("labels"))}
    assert branches == {"master", "before-synthetic"}
    journey.step("tagged-v1")

    # 4. Restore v1: preview first, then confirm; the Data Manager shows the project as it was.
    p.open(f"{url}/projects/{project}/data")
    p.see("Submitted annotations: 2")
    p.open(f"{url}/pachyderm/targets/{target['id']}/versions")
    p.click(f"tr[data-commit='{v1}'] .row-menu")
    button = p.until(lambda: p.visible(".ps-menu .restore-button"), "no Restore in v1's menu")[0]
    p.click_now(button)
    preview = p.until(lambda: p.visible("#restore-counts"), "no restore preview")[0]
    assert "create 0, update 1 and delete 1" in preview.text, preview.text
    assert len(api.call("GET", f"/api/tasks/{second}/annotations/")) == 1, "the preview changed nothing"
    journey.step("restore-preview")
    p.click("#restore-confirm")
    p.see(f"Restored {v1[:8]}")
    journey.step("restored")
    assert api.call("GET", f"/api/tasks/{second}/annotations/") == []
    [back] = api.call("GET", f"/api/tasks/{first}/annotations/")
    assert choice(back) == "cat"
    p.click("#restore-message a")
    p.until(lambda: driver.current_url.startswith(f"{url}/projects/{project}/data"), "no Data Manager")
    p.see("Submitted annotations: 1")
    journey.step("data-manager-after-restore")

    # The restore is staged like any change; the next Sync's version says where it came from.
    v3 = sync(api, target["id"])["last_commit"]
    p.open(f"{url}/pachyderm/targets/{target['id']}/versions")
    row_v3 = p.until(lambda: p.visible(f"tr[data-commit='{v3}']"), "the Sync after the restore is not listed")[0]
    assert f"restored from {v1[:8]}" in row_v3.text
    journey.step("restored-version-listed")
