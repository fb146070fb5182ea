"""The README's "Close the loop" as a person walks it in real Chromium: try.py makes the image set,
the pipelines and the project; one image labeled in the labeling view and nine more through the
API, Sync on the Target's card; the Versions page shows the accuracy once train and predict ended;
Sync on the Source's card; the labeling view shows an image's predicted class pre-selected; 30 more
accepted or corrected (the first in the labeling view), Sync; the Versions page shows two accuracies.

Real Label Studio serving the patched bundle, its mount server and an embedded PFS server of this
module's own: try.py's repo and pipeline names are fixed, as the README shows them.
Screenshots: test-artifacts/browser/model-loop/."""

import importlib.util
import json
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By

from plugins.browser import SHOTS, Page
from plugins.labelstudio import session_mount_server
from plugins.pfs import PfsServer, read

from .conftest import start_patched_labelstudio
from .storage_page import StoragePage

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]
ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "model-loop"
JOBS = 300  # seconds for a Sync and the train and predict jobs it starts, on a shared machine


def example():
    spec = importlib.util.spec_from_file_location("model_loop_try", EXAMPLE / "try.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def appliance(tmp_path_factory, patched_site):
    """An embedded server, the mount server on it and Label Studio: the appliance the README starts."""
    root = tmp_path_factory.mktemp("model-loop")
    server = PfsServer(root / "pfs").start()
    mount = session_mount_server(root / "mount", server.address)
    ls = start_patched_labelstudio(root / "ls", mount, patched_site)
    yield server, ls
    ls.stop()
    mount.stop()
    server.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def person(chromium, appliance):
    """Signed in on this Label Studio (host `localhost`: cookies ignore ports, the module-wide
    session on 127.0.0.1 stays); signed out after it."""
    folder = SHOTS / "model-loop"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    storage = StoragePage(chromium, appliance[1], folder, host="localhost")
    storage.login()
    page = Page(chromium, folder)
    page.url = storage.url
    yield page
    chromium.delete_all_cookies()


def choices_checked(driver) -> dict | None:
    """{class: selected} of the labeling view's choices, None until all three are shown."""
    try:
        boxes = {
            c: driver.find_elements(By.CSS_SELECTOR, f".lsf-choices input[name='{c}']")
            for c in ("red", "green", "blue")
        }
        if not all(boxes.values()):
            return None
        return {c: found[0].is_selected() for c, found in boxes.items()}
    except StaleElementReferenceException:
        return None


def choose(page, cls):
    """Click the class's choice, as a person does (its label: the input itself is styled away), and
    see it selected; a click the view has not taken yet is not repeated (a second one unselects)."""
    selector = f".lsf-choices input[name='{cls}']"

    def selected():
        try:
            return page.driver.find_element(By.CSS_SELECTOR, selector).is_selected()
        except WebDriverException:
            return False

    def clicked():
        try:
            page.driver.find_element(By.CSS_SELECTOR, selector).find_element(By.XPATH, "./ancestor::label[1]").click()
            return True
        except WebDriverException:
            return False

    if not selected():
        page.until(clicked, f"cannot click {cls!r}")
    page.until(selected, f"{cls!r} is not selected after the click")


def saved_choices(page, ls, task) -> list:
    """The task's annotations' choices once Label Studio has saved one (the editor may say so first)."""
    return page.until(
        lambda: [a["result"][0]["value"]["choices"] for a in ls.api("GET", f"/api/tasks/{task}/annotations").json()],
        f"task {task} has no saved annotation",
    )


def submit(page):
    """Submit, and see the editor's Submit turn into Update."""
    page.press("Submit")
    page.until(
        lambda: page.visible("//button[normalize-space()='Update']", by="xpath"), "Submit did not turn into Update"
    )


def sync_on_card(page, ls, project, title, storage_id, target=False) -> dict:
    """Settings > Cloud Storage, Sync on the card titled `title`; the storage once that Sync ended
    (its last_sync changed)."""
    before = ls.storage(storage_id, target)["last_sync"]
    page.open(f"{page.url}/projects/{project}/settings/storage")

    def pressed():
        for card in page.visible(".lsf-card"):
            header = card.find_elements(By.CSS_SELECTOR, ".lsf-card__header")
            if header and header[0].text.strip() == title:
                buttons = card.find_elements(By.CSS_SELECTOR, "button[aria-label='Sync Storage']")
                return bool(buttons) and page.click_now(buttons[0])
        return False

    page.until(pressed, f"cannot press Sync on the {title!r} card")
    deadline = time.monotonic() + JOBS
    while True:
        storage = ls.storage(storage_id, target)
        if storage["last_sync"] != before and storage["status"] in ("completed", "completed_with_errors", "failed"):
            assert storage["status"] == "completed", storage
            return storage
        assert time.monotonic() < deadline, f"the Sync never finished: {storage}"
        time.sleep(0.25)


def accuracies(page) -> dict:
    """{commit: text} of the Versions page's accuracy column, for rows that show one."""
    return page.js("""
        const heads = [...document.querySelectorAll('#versions-table thead th')];
        const at = heads.findIndex(h => h.textContent.trim() === 'accuracy');
        if (at < 0) return {};
        const out = {};
        for (const row of document.querySelectorAll('#versions-table tbody tr[data-commit]')) {
          const cell = row.children[at];
          if (cell && cell.textContent.trim()) out[row.dataset.commit] = cell.textContent.trim();
        }
        return out;""")


def versions_shown(page, target, commits) -> dict:
    """The Versions page once every commit in `commits` shows a number in the accuracy column and
    no job runs: the page looks again by itself while jobs run, and while a version just synced on
    a branch pipelines read has no job listed yet (nobody presses Refresh)."""
    page.open(f"{page.url}/pachyderm/targets/{target}/versions")

    def shown():
        figures = accuracies(page)
        if page.visible("#jobs-note"):
            return None
        if not all(re.fullmatch(r"\d+(\.\d+)?", figures.get(c, "")) for c in commits):
            return None
        return figures

    return page.until(shown, f"the Versions page never showed the accuracy of {commits}", timeout=JOBS)


def test_the_readme_model_loop_in_the_browser(person, appliance):
    server, ls = appliance
    page, driver, pach = person, person.driver, server.client()
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "try.py"), server.address, "--label-studio", ls.url, "--token", ls.token],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    project = int(re.search(r"project (\d+):", out.stdout).group(1))
    target = int(re.search(r"/pachyderm/targets/(\d+)/versions", out.stdout).group(1))
    [source] = ls.api("GET", f"/api/storages/pachyderm?project={project}", expect=200).json()
    ls.wait_storage(target, target=True)
    truth = {path: cls for path, (_, cls) in example().make_images().items()}
    tasks = {t["data"]["pachyderm_path"]: t["id"] for t in ls.tasks(project)}
    assert set(tasks) == set(truth)
    order = sorted(truth)

    def label(paths):
        for path in paths:
            result = [
                {"from_name": "class", "to_name": "image", "type": "choices", "value": {"choices": [truth[path]]}}
            ]
            ls.api("POST", f"/api/tasks/{tasks[path]}/annotations", json={"result": result}, expect=201)

    # Label 10 images: the first in the labeling view, nine through the API.
    first = order[0]
    page.open(f"{page.url}/projects/{project}/data?task={tasks[first]}")
    page.until(
        lambda: choices_checked(driver) == {"red": False, "green": False, "blue": False},
        "the labeling view never showed the image's choices, none selected",
    )
    choose(page, truth[first])
    page.shot("first-label")
    submit(page)
    assert saved_choices(page, ls, tasks[first]) == [[truth[first]]]
    label(order[1:10])

    # Sync on the Target's card; the Versions page shows the version's accuracy once its jobs ended.
    v1 = sync_on_card(page, ls, project, "Labels", target, target=True)["last_commit"]
    figures = versions_shown(page, target, [v1])
    page.shot("versions-first-accuracy")
    api = ls.api("GET", f"/api/storages/export/pachyderm/{target}/versions", expect=200).json()
    [row] = [v for v in api["versions"] if v["commit"] == v1]
    accuracy = row["metrics"]["default/train"]["accuracy"]
    assert float(figures[v1]) == pytest.approx(accuracy, abs=0.01), (figures, row["metrics"])

    # Sync on the Source's card: predict's <path>.json become predictions; the card says so.
    done = sync_on_card(page, ls, project, "Images", source["id"])
    assert done["meta"]["predictions"]["added"] == 60, done["meta"]
    page.open(f"{page.url}/projects/{project}/settings/storage")
    page.see(f"60 prediction(s) added to 60 task(s) from default/predict@master at {v1[:12]}")
    page.shot("source-card-predictions")

    # The labeling view shows the next image's predicted class pre-selected; accept or correct it.
    nxt = order[10]
    predicted = json.loads(read(pach, f"predict@{v1}:/{nxt}.json"))
    cls = predicted["result"][0]["value"]["choices"][0]
    page.open(f"{page.url}/projects/{project}/data?task={tasks[nxt]}")
    expected = {c: c == cls for c in ("red", "green", "blue")}
    page.until(
        lambda: choices_checked(driver) == expected,
        f"the prediction {cls!r} is not pre-selected: {choices_checked(driver)}",
    )
    page.shot("task-pre-annotated")
    choose(page, truth[nxt])  # accepts the prediction when it is right, corrects it when not
    submit(page)
    assert saved_choices(page, ls, tasks[nxt]) == [[truth[nxt]]]
    label(order[11:40])

    # Sync again: the Versions page shows both versions' accuracy, the new one higher.
    v2 = sync_on_card(page, ls, project, "Labels", target, target=True)["last_commit"]
    figures = versions_shown(page, target, [v1, v2])
    page.shot("versions-two-accuracies")
    assert float(figures[v1]) == pytest.approx(accuracy, abs=0.01)
    assert float(figures[v2]) > float(figures[v1]), figures
