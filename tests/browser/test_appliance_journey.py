"""A person's whole path through the appliance, in Debian's Chromium (issue 6).

The built image runs as the README one-liner does (embedded PFS server, its port 30650 published);
images go into a repo through the ordinary Pachyderm SDK, then everything else is done in the
browser: log in, create an image bounding-box project, add a Pachyderm Source (test connection,
preview, Save & Sync), see the tasks with their Pachyderm paths, open one, see the image, draw a
box, Submit, add a Pachyderm Target, press Sync, and check through the SDK that exactly one commit
holds that annotation; the Target card then follows the job that commit started (examples/label-counts,
made slower) from running to success without a reload. Last, a Source naming a missing repo shows a
readable error in the form.

Screenshots of every step: test-artifacts/browser/<test name>/ (kept; on failure also the last
screen, the page's HTML and the browser console). Step timings: timings.txt in the same folder.
"""
import io
import json
import pathlib
import time

import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs
from PIL import Image, ImageDraw
from selenium.common.exceptions import StaleElementReferenceException

from plugins.image import ADMIN, PASSWORD, files_at, sdk_client

pytestmark = [pytest.mark.image, pytest.mark.browser, pytest.mark.timeout(900)]

# Two images of different sizes: the size the editor reports tells which file it shows.
IMAGES = {"photos/red-square.png": ("red", (320, 240)), "photos/blue-square.png": ("blue", (400, 300))}
OTHER = {"notes/readme.txt": b"not under the prefix: never a task"}
SOURCE_TITLE, TARGET_TITLE = "Images from Pachyderm", "Labels to Pachyderm"
LABEL_COUNTS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "label-counts" / "pipeline.json"


# The job stays running until the test has seen it running on the card, then the test creates this
# file in the container (at most 30 s: where a datum cannot see the container's /tmp, it just waits).
RELEASE = "/tmp/label-counts-may-finish"


def slow_label_counts() -> str:
    """examples/label-counts, held until RELEASE exists: long enough to see its job running on the card."""
    spec = json.loads(LABEL_COUNTS.read_text())
    spec["transform"]["stdin"] = [
        "import os, time",
        "deadline = time.monotonic() + 30",
        f"while not os.path.exists({RELEASE!r}) and time.monotonic() < deadline:",
        "    time.sleep(0.2)",
    ] + spec["transform"]["stdin"]
    return json.dumps(spec)


def png(color: str, size: tuple[int, int]) -> bytes:
    image = Image.new("RGB", size, "white")
    w, h = size
    ImageDraw.Draw(image).rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=color)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def commits(client: Client, repo: str) -> list:
    return list(client.pfs.list_commit(repo=pfs.Repo.from_uri(repo)))


class Journey:
    """The screens of the appliance, driven through a `Page` (tests/plugins/browser.py)."""

    def __init__(self, page, url):
        self.page, self.url, self.driver = page, url, page.driver
        self.timings, self.started = [], time.monotonic()

    def step(self, name):
        """Screenshot of what a person sees now, and the time since the last step."""
        now = time.monotonic()
        self.timings.append((name, now - self.started))
        self.started = now
        self.page.shot(name)
        (self.page.shots / "timings.txt").write_text(
            "".join(f"{seconds:7.1f}s  {label}\n" for label, seconds in self.timings))

    def login(self):
        p = self.page
        p.open(self.url + "/user/login/")
        p.type("email", ADMIN)
        p.type("password", PASSWORD)
        p.click("button[type=submit]")
        p.until(lambda: "/user/login" not in self.driver.current_url, "still on the login page")

    def create_project(self, title) -> int:
        """Projects > Create Project > name > Labeling Setup > the bounding-box template > Save."""
        p = self.page
        p.open(self.url + "/projects/")
        p.press("Create Project")
        p.type("name", title)
        p.see("Labeling Setup").click()
        p.see("Object Detection with Bounding Boxes").click()
        p.see("Airplane")
        p.see("Car")
        self.step("project-labeling-setup")
        p.press("Save")
        p.until(lambda: "/projects/" in self.driver.current_url and "/data" in self.driver.current_url,
                "Save did not open the new project")
        p.see("Import data to get your project started")
        return int(self.driver.current_url.split("/projects/")[1].split("/")[0])

    def open_cloud_storage(self):
        """The project's Settings button, then Cloud Storage in the settings menu."""
        p = self.page
        p.until(lambda: any(p.click_now(e) for e in p.visible("a[href$='/settings']")[:1]), "no Settings link")
        p.see("Cloud Storage").click()
        p.until(lambda: self.driver.current_url.endswith("/settings/storage"), "Cloud Storage did not open")
        p.see("Add Source Storage")

    def add_storage(self, kind):
        """Add Source/Target Storage, then the Pachyderm tile. The button moves from the empty-state
        card to the column header once storages exist; a click before React wires it is repeated."""
        p = self.page

        def tiles_shown():
            tiles = p.visible("[data-testid=storage-provider-pachyderm]")
            if tiles and tiles[0].text:
                return True
            if not tiles:
                for button in p.visible(f"[data-testid^=add-{kind}-storage-button]")[:1]:
                    p.click_now(button)
            return False
        p.until(tiles_shown, f"Add {kind} storage never showed the Pachyderm tile")
        self.step(f"{kind}-tiles")
        p.click("[data-testid=storage-provider-pachyderm]")
        p.press("Next")
        p.until(lambda: p.visible("input[name=repo]"), "no Repository field")

    def modal_closed(self):
        """The wizard is gone (not merely on a step without inputs, like the review step)."""
        buttons = "//button[normalize-space()='Save & Sync' or normalize-space()='Save' or " \
                  "normalize-space()='Test Connection' or normalize-space()='Previous']"
        self.page.until(lambda: not self.page.visible("[data-testid^=storage-provider-], input[name=repo]")
                        and not self.page.visible(buttons, by="xpath"), "the storage form stayed open")

    def card(self, title):
        for card in self.page.visible(".lsf-card"):
            header = card.find_elements("css selector", ".lsf-card__header")
            if header and header[0].text.strip() == title:
                return card
        return None

    def card_shows(self, title, *texts) -> str:
        """The card asks to refresh the page for the sync status, so a person reloads until it shows."""
        p = self.page

        def shows():
            card = self.card(title)
            text = card.text if card is not None else ""
            if all(t in text for t in texts):
                return text
            self.driver.refresh()
            p.see("Add Source Storage")  # the page is back; the next round reads the cards again
            return False
        return p.until(shows, f"card {title!r} never showed {texts}", timeout=180)

    def editor_image(self):
        """The image the labeling editor shows: loaded, with its natural and displayed size."""
        return self.page.js("""
            let best = null;
            for (const img of document.querySelectorAll('img')) {
              const r = img.getBoundingClientRect();
              if (img.complete && img.naturalWidth > 0 && r.width > 200 && (!best || r.width > best.shown_width))
                best = {src: img.src, natural_width: img.naturalWidth, natural_height: img.naturalHeight,
                        shown_width: r.width, x: r.x, y: r.y, w: r.width, h: r.height};
            }
            return best;""")

    def fetched(self, fragment) -> list:
        """What the page loaded from URLs containing `fragment` (Resource Timing: name, status)."""
        return [(e["name"], e.get("responseStatus"), e["initiatorType"]) for e in
                self.page.js("return performance.getEntriesByType('resource').map(e => e.toJSON())")
                if fragment in e["name"]]

    def draw_box(self, image, label):
        """Pick the label, then drag a box over the middle of the image, as a person does with a mouse."""
        from selenium.webdriver.common.actions.action_builder import ActionBuilder

        p = self.page
        chip = p.until(lambda: next((e for e in p.visible(".lsf-label") if e.text.split("\n")[0] == label), None),
                       f"no label {label!r} under the image")
        p.click_now(chip)
        p.until(lambda: "lsf-label_selected" in chip.get_attribute("class"), f"label {label!r} not selected")
        x, y, w, h = image["x"], image["y"], image["w"], image["h"]
        actions = ActionBuilder(self.driver)
        actions.pointer_action.move_to_location(int(x + w * 0.35), int(y + h * 0.35)).pointer_down()
        for i in range(1, 6):
            actions.pointer_action.move_to_location(int(x + w * (0.35 + 0.05 * i)), int(y + h * (0.35 + 0.05 * i)))
        actions.pointer_action.pointer_up()
        actions.perform()


def test_a_person_labels_pachyderm_images_and_syncs_one_commit(data_volume, appliance_factory, page):
    t0 = time.monotonic()
    app = appliance_factory(volume=data_volume).wait_healthy()
    url, api = app.url, app.api()
    client = sdk_client(app.pachd_address)
    client.pfs.create_repo(repo=pfs.Repo.from_uri("images"))
    client.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    client.pps.create_pipeline_v2(create_pipeline_request_json=slow_label_counts())  # reads labels@master
    with client.pfs.commit(branch=pfs.Branch.from_uri("images@master")) as commit:
        for path, (color, size) in IMAGES.items():
            commit.put_file_from_bytes(path=path, data=png(color, size))
        for path, data in OTHER.items():
            commit.put_file_from_bytes(path=path, data=data)
    source_commit = commit.id
    journey = Journey(page, url)
    journey.timings.append(("appliance healthy, images put through the SDK", time.monotonic() - t0))
    p = page

    # 1. Log in with the bootstrap user.
    journey.login()
    p.see("Create Project")
    journey.step("logged-in")

    # 2. A project with the image bounding-box template.
    project = journey.create_project("Pachyderm journey")
    journey.step("project-created")
    config = api.call("GET", f"/api/projects/{project}")["label_config"]
    assert "<RectangleLabels" in config and "<Image" in config, config

    # 3. Settings > Cloud Storage > Add Source Storage > Pachyderm.
    journey.open_cloud_storage()
    journey.step("cloud-storage-empty")
    journey.add_storage("source")
    assert p.driver.find_element("name", "branch").get_attribute("value") == "master"
    p.type("title", SOURCE_TITLE)
    p.type("repo", "images")
    p.type("branch", "master")
    journey.step("source-connection-filled")
    p.press("Test Connection")
    p.button("Connection Verified")
    journey.step("source-connection-verified")
    p.press("Next")
    p.see("Configure Import Settings & Preview Data")
    p.type("prefix", "photos")
    p.click("button[data-name=use_blob_urls]")
    p.click("[data-testid=select-option-Files]")
    p.until(lambda: p.visible("button[data-name=use_blob_urls][data-value=Files]"), "Files import method not chosen")
    p.press("Load Preview")
    for path in IMAGES:
        p.see(path)
    assert "notes/readme.txt" not in p.text()
    journey.step("source-preview")
    p.press("Next")
    journey.step("source-review")
    p.press("Save & Sync")
    journey.modal_closed()
    card = journey.card_shows(SOURCE_TITLE, "Completed", f"Tasks\n{len(IMAGES)} ({len(IMAGES)} new)")
    assert "Pachyderm" in card
    journey.step("source-card-synced")

    # The tasks in the Data Manager, with their Pachyderm paths and the commit they came from.
    p.open(f"{url}/projects/{project}/data")
    for path in IMAGES:
        p.see(path)
    p.see(f"Tasks: {len(IMAGES)} / {len(IMAGES)}")
    assert p.text().count(source_commit) == len(IMAGES), "each task shows the commit it was imported from"
    assert "notes/readme.txt" not in p.text()
    journey.step("data-manager-tasks")

    # 4. Open the red square's task: its image is displayed, served by the appliance.
    p.see("photos/red-square.png").click()
    p.until(lambda: "task=" in p.driver.current_url, "the task did not open")
    image = p.until(lambda: (i := journey.editor_image()) and i["natural_width"] == 320 and i, "no image in the editor")
    assert (image["natural_width"], image["natural_height"]) == IMAGES["photos/red-square.png"][1]
    storage_id = api.call("GET", f"/api/storages/pachyderm?project={project}")[0]["id"]
    wanted = f"{url}/data/pachyderm/{storage_id}/?path=photos/red-square.png"
    loads = journey.fetched("/data/pachyderm/")
    assert any(name == wanted and status == 200 for name, status, _ in loads), loads
    p.see("Labeled regions will appear here")
    journey.step("task-image-shown")

    journey.draw_box(image, "Car")
    p.until(lambda: "Labeled regions will appear here" not in p.text(), "the box is not in the Regions list")
    journey.step("box-drawn")
    p.press("Submit")
    # Submitted: the editor's Submit turns into Update (disabled until the next change).
    p.until(lambda: p.visible("//button[normalize-space()='Update']", by="xpath"), "Submit did not turn into Update")
    [task] = [t for t in api.tasks(project) if t["data"]["pachyderm_path"] == "photos/red-square.png"]
    [annotation] = api.call("GET", f"/api/tasks/{task['id']}/annotations/")
    [box] = annotation["result"]
    assert box["type"] == "rectanglelabels" and box["value"]["rectanglelabels"] == ["Car"]
    assert 0 < box["value"]["width"] < 100 and 0 < box["value"]["height"] < 100
    journey.step("submitted")

    # 5. Add Target Storage > Pachyderm on the labels repo; then Sync.
    before_target = {c.commit.id for c in commits(client, "labels")}
    journey.open_cloud_storage()
    journey.add_storage("target")
    p.type("title", TARGET_TITLE)
    p.type("repo", "labels")
    p.type("branch", "master")
    p.type("prefix", "annotations")
    p.press("Test Connection")
    p.button("Connection Verified")
    journey.step("target-connection-verified")
    p.press("Save")
    journey.modal_closed()
    journey.card_shows(TARGET_TITLE, "Completed", "(1 total)")
    journey.step("target-card-created")
    before_sync = commits(client, "labels")
    made_by_creating = [c for c in before_sync if c.commit.id not in before_target]
    assert all(not files_at(client, f"labels@{c.commit.id}:/") for c in before_sync), \
        "nothing reaches Pachyderm before Sync"
    assert len(made_by_creating) <= 1, "creating the Target makes at most the empty commit of the new branch"

    target_card = journey.card(TARGET_TITLE)
    p.until(lambda: p.click_now(target_card.find_element("css selector", "button[aria-label='Sync Storage']")),
            "cannot press Sync Storage")
    journey.card_shows(TARGET_TITLE, "Completed", "Annotations\n1 (1 total)")
    journey.step("target-card-synced")

    after_sync = commits(client, "labels")
    new = [c for c in after_sync if c.commit.id not in {b.commit.id for b in before_sync}]
    assert len(new) == 1, f"Sync made {len(new)} commits, not one"
    [synced] = new
    assert files_at(client, f"labels@{synced.commit.id}:/") == {f"/annotations/{annotation['id']}.json"}
    saved = json.loads(client.pfs.pfs_file(
        file=pfs.File.from_uri(f"labels@{synced.commit.id}:/annotations/{annotation['id']}.json")).read())
    assert saved["id"] == annotation["id"] and saved["result"][0]["value"]["rectanglelabels"] == ["Car"]
    assert saved["task"]["data"]["pachyderm_path"] == "photos/red-square.png"
    assert saved["task"]["data"]["pachyderm_commit"] == source_commit
    assert f"default/images@{source_commit}" in synced.description and ADMIN in synced.description
    target = api.call("GET", f"/api/storages/export/pachyderm?project={project}")[0]
    assert target["last_commit"] == synced.commit.id
    journey.card_shows(TARGET_TITLE, "Commit", synced.commit.id, "Repository", "default/labels@master")
    journey.step("target-card-shows-commit")

    # 5b. The job that commit started, on the card: running, then success, with no reload between.
    def pipelines_item():
        try:
            card = journey.card(TARGET_TITLE)
            items = card.find_elements("css selector", ".pachstudio-pipelines") if card is not None else []
            return items[0].text if items else ""
        except StaleElementReferenceException:  # the card re-rendered meanwhile: read it again
            return ""
    p.js("window.__pachstudioNoReload = true;")
    running = p.until(lambda: "default/label-counts: " in (t := pipelines_item()) and t, "no job on the card")
    journey.step("target-card-job-running")
    assert "success" not in running and "updating every 2 s" in running, running
    assert app.exec("touch", RELEASE)[0] == 0
    done = p.until(lambda: "default/label-counts: success" in (t := pipelines_item()) and t,
                   "the card never showed the job's success", timeout=180)
    journey.step("target-card-job-success")
    assert p.js("return window.__pachstudioNoReload === true;"), "the page was reloaded"
    assert f"datums 1 processed, 0 skipped, 0 failed of 1, output default/label-counts@{synced.commit.id}" in done
    counts = client.pfs.pfs_file(file=pfs.File.from_uri(f"label-counts@{synced.commit.id}:/counts.json")).read()
    assert json.loads(counts) == {"Car": 1}

    # 6. A Source naming a repo that does not exist: a readable error in the form, nothing saved.
    p.driver.refresh()
    p.see(SOURCE_TITLE)
    journey.add_storage("source")
    p.type("title", "Missing repo")
    p.type("repo", "no-such-repo")
    p.press("Test Connection")
    error = p.see('repo "no-such-repo" not found in Pachyderm project "default"')
    assert error.find_elements("xpath", "ancestor::*[.//input[@name='repo']]"), "the error is not in the form"
    assert p.visible("input[name=repo]"), "the form stays open for a fix"
    assert "Connection Verified" not in p.text()
    assert p.driver.find_element("xpath", "//button[normalize-space()='Next']").get_attribute("disabled")
    journey.step("source-missing-repo-error")
    assert [s["title"] for s in api.call("GET", f"/api/storages/pachyderm?project={project}")] == [SOURCE_TITLE]
