"""The Versions and Task history pages as a labeling lead sees them at 1280x800 in Debian's Chromium:
inside Label Studio's own frame (its header, menu and the project's breadcrumbs), with its buttons,
badges, dialogs and menus, and nothing wider than the window; 60 versions on two pages, a
comparison, a restore preview, tags, a task's history on its page and beside the task in the
labeling view, model metrics in columns, and the empty, error and no-permission states.

Real Label Studio (gunicorn, the patched bundle), the mount server and the embedded PFS server.
Screenshots, with Label Studio's own Data Manager for comparison: test-artifacts/browser/pages-in-frame/.
"""

import json
import pathlib
import re
import shutil
import time
import uuid

import pytest
from pachyderm_sdk.api import auth, pfs
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from plugins.browser import SHOTS
from plugins.labelstudio import LabelStudio
from plugins.mount import MountServer
from plugins.pfs import ROOT_TOKEN, PfsServer, commit_files

from .storage_page import StoragePage

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]
CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="choice" toName="text">'
    '<Choice value="cat"/><Choice value="dog"/></Choices></View>'
)
EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "label-counts" / "pipeline.json"
WIDTH, HEIGHT = 1280, 800
UTC = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
SYNTHETIC = 58  # commits made straight to the Target's branch, before its two Syncs: 60 versions


def result(label):
    return [{"from_name": "choice", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


# --- the window, the screenshots, what a page must show --------------------------------------------


@pytest.fixture(scope="module")
def shots() -> pathlib.Path:
    folder = SHOTS / "pages-in-frame"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def size_window(driver):
    """The page's own area (the viewport) at 1280x800, whatever the browser's frame takes."""
    driver.set_window_size(WIDTH, HEIGHT)
    outer = driver.execute_script(
        "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(WIDTH + outer[0], HEIGHT + outer[1])
    assert driver.execute_script("return [window.innerWidth, window.innerHeight]") == [WIDTH, HEIGHT]


@pytest.fixture(scope="module")
def lead(page, shots):
    """The logged-in browser of tests/patches/conftest.py, at 1280x800 for this module."""
    size_window(page.driver)
    page.screenshots = shots
    yield page
    page.driver.set_window_size(1400, 1000)


def shot(page, name) -> pathlib.Path:
    path = page.screenshots / f"{name}.png"
    page.driver.save_screenshot(str(path))
    return path


def sticking_out(driver) -> list:
    """Whatever is wider than the window: the document's scroll width, an element's box past the
    right edge, a scroll box that scrolls sideways."""
    return driver.execute_script("""
        const w = window.innerWidth, out = [];
        if (document.documentElement.scrollWidth > w) out.push('document ' + document.documentElement.scrollWidth);
        for (const e of document.querySelectorAll('body *')) {
          const r = e.getBoundingClientRect();
          const name = `${e.tagName}.${e.className}`;
          if (r.width > 0 && r.height > 0 && r.right > w + 0.5) out.push(`${name} ends at ${r.right}`);
          const x = getComputedStyle(e).overflowX;
          const scrolls = x === 'auto' || x === 'scroll';
          if (scrolls && e.scrollWidth > e.clientWidth + 1) out.push(`${name} scrolls sideways`);
        }
        return out;""")


def ours(found: list) -> list:
    """What of ours sticks out (the Data Manager's own table is Label Studio's business)."""
    return [e for e in found if e.startswith("document") or "ps-" in e or "pachstudio" in e]


def frame(driver) -> dict:
    """Label Studio's frame as its app draws it: the header with its logo and the breadcrumbs."""
    return driver.execute_script("""
        const header = document.querySelector('.lsf-menu-header');
        const box = header ? header.getBoundingClientRect() : null;
        return {
          header: !!box && box.top === 0 && box.width === window.innerWidth && box.height > 0,
          logo: !!document.querySelector('.lsf-menu-header .lsf-menu-header__logo'),
          menu: !!document.querySelector('.lsf-menu-header .main-menu-trigger'),
          crumbs: [...document.querySelectorAll('.lsf-menu-header .lsf-breadcrumbs__item')]
            .map(li => li.textContent.trim()),
          links: [...document.querySelectorAll('.lsf-menu-header .lsf-breadcrumbs__item a')]
            .map(a => a.getAttribute('href')),
        };""")


def looks_like_label_studio(driver, ours: str):
    """A button of ours is styled as Label Studio's own (its header's keyboard-shortcuts button,
    the same kind: neutral, outlined, small), in its font."""
    styles = driver.execute_script(
        """
        const props = ['height', 'borderRadius', 'fontFamily', 'fontWeight', 'fontSize', 'borderTopColor',
                       'backgroundColor', 'color'];
        const pick = (e) => { const s = getComputedStyle(e); return Object.fromEntries(props.map(p => [p, s[p]])); };
        const theirs = document.querySelector('[data-testid=hotkeys-button]');
        return [pick(document.querySelector(arguments[0])), pick(theirs)];""",
        ours,
    )
    assert styles[0] == styles[1], styles
    assert styles[0]["fontFamily"].startswith("Figtree"), styles


def until(page, predicate, message, timeout=90):
    """Wait on what the page shows; an element re-drawn meanwhile is looked up again."""

    def check(_):
        try:
            return predicate()
        except (StaleElementReferenceException, WebDriverException):
            return False

    return WebDriverWait(page.driver, timeout, poll_frequency=0.25).until(check, message)


def css(page, selector):
    return page.driver.find_elements(By.CSS_SELECTOR, selector)


def visible(page, selector):
    return [e for e in css(page, selector) if e.is_displayed()]


def open_row_menu(page, commit):
    """The "⋮" menu of a version's row (Label Studio's dropdown)."""
    until(page, lambda: visible(page, f"tr[data-commit='{commit}'] .row-menu"), f"no menu on {commit}")[0].click()
    return until(page, lambda: visible(page, ".ps-menu [role=menuitem]"), "the row menu did not open")


def pick_menu_item(page, commit, css_class):
    open_row_menu(page, commit)
    until(page, lambda: visible(page, f".ps-menu .{css_class}"), f"no .{css_class} in the menu")[0].click()


# --- 60 versions of a Target -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sixty(lead, shared_pfs_server):
    """A project with a Source of four texts and a Target on `labels@master` with 60 versions: 58
    commits made straight to the branch (with a description in the format a Sync writes, so the
    page reads counts and annotators from them), then two real Syncs: v1 labels tasks 1 and 2, v2
    relabels task 1 and labels task 3. Task 4's label is staged, not synced."""
    ls, pach = lead.ls, shared_pfs_server.client()
    tag = uuid.uuid4().hex[:6]
    texts, labels = f"texts-{tag}", f"labels-{tag}"
    for repo in (texts, labels):
        pach.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    with pach.pfs.commit(branch=pfs.Branch.from_uri(f"{texts}@master")) as c:
        for i in range(4):
            c.put_file_from_bytes(path=f"t{i}.json", data=json.dumps({"text": f"text number {i}"}).encode())
    title = f"Sentiment review {tag}"
    project = ls.create_project(title=title, label_config=CONFIG)["id"]
    source = ls.create_source(project, title="Texts", repo=texts)
    assert ls.sync(source["id"])["last_sync_count"] == 4
    tasks = sorted(t["id"] for t in ls.tasks(project))
    first = ls.annotate(tasks[0], "cat")
    ls.annotate(tasks[1], "dog")
    for n in range(SYNTHETIC):
        text = (
            f'Label Studio project {project} "{title}": {n % 5} added, {n % 3} changed, {n % 2} deleted\n'
            f"annotators: admin@example.com\nsource commits: default/{texts}@{'0' * 32}\n"
            f'files: one per annotation under "ann" (Label Studio target storage 0)'
        )
        with pach.pfs.commit(branch=pfs.Branch.from_uri(f"{labels}@master"), description=text) as c:
            c.put_file_from_bytes(path=f"notes/{n}.txt", data=b"not a label")  # outside the Target's prefix
    target = ls.create_target(project, title="Labels", repo=labels, prefix="ann")
    assert ls.wait_storage(target["id"], target=True)["status"] == "completed"
    v1 = ls.sync(target["id"], target=True)["meta"]["commit"]
    ls.api("PATCH", f"/api/annotations/{first['id']}", json={"result": result("dog")}, expect=200)
    ls.annotate(tasks[2], "cat")
    v2 = ls.sync(target["id"], target=True)["meta"]["commit"]
    ls.annotate(tasks[3], "dog")  # staged
    history = [c.commit.id for c in pach.pfs.list_commit(repo=pfs.Repo.from_uri(labels))]
    assert len(history) >= 60 and history[:2] == [v2, v1], history[:3]
    return {
        "ls": ls,
        "pach": pach,
        "project": project,
        "title": title,
        "target": target["id"],
        "labels": labels,
        "texts": texts,
        "tasks": tasks,
        "v1": v1,
        "v2": v2,
        "count": len(history),
        "history": history,
        "first": first["id"],
    }


def versions_url(lead, target) -> str:
    return f"{lead.url}/pachyderm/targets/{target}/versions"


def rows(lead):
    return [r.get_attribute("data-commit") for r in css(lead, "#versions-table tbody tr.ps-row")]


def test_sixty_versions_on_two_pages_inside_label_studios_frame(lead, sixty):
    s, driver = sixty, lead.driver
    driver.get(versions_url(lead, s["target"]))
    until(lead, lambda: len(rows(lead)) == 50, "the first page never listed 50 versions")
    shot(lead, "01-versions-page-1")

    seen = frame(driver)
    assert seen["header"] and seen["logo"] and seen["menu"], seen
    assert seen["crumbs"] == ["Projects", s["title"], "Versions"], seen
    assert seen["links"] == ["/projects", f"/projects/{s['project']}/data"], seen
    assert sticking_out(driver) == []
    looks_like_label_studio(driver, "#storage-link")
    header = driver.find_element(By.CSS_SELECTOR, ".lsf-menu-header")
    assert (
        header.find_element(By.ID, "data-manager-link").get_attribute("href").endswith(f"/projects/{s['project']}/data")
    )
    assert (
        header.find_element(By.ID, "storage-link")
        .get_attribute("href")
        .endswith(f"/projects/{s['project']}/settings/storage")
    )

    assert rows(lead) == s["history"][:50]
    assert (
        lead.driver.find_element(By.ID, "summary").text
        == f"{s['count']} version(s); 1 change(s) staged since the last Sync: press Sync on the Target to make them a "
        "version."
    )
    assert driver.find_element(By.ID, "page-info").text == f"1–50 of {s['count']} · page 1 of 2"
    newest = driver.find_element(By.CSS_SELECTOR, f"tr[data-commit='{s['v2']}']")
    ident = newest.find_element(By.CSS_SELECTOR, ".ps-id code")
    assert ident.text == s["v2"][:8] and ident.get_attribute("title") == s["v2"]  # short, the whole id on hover
    synced = newest.find_element(By.CSS_SELECTOR, "time.ps-time")
    assert re.fullmatch(r"just now|\d+ (minute|hour)s? ago", synced.text), synced.text
    assert UTC.match(synced.get_attribute("title")), synced.get_attribute("title")
    assert [newest.find_element(By.CSS_SELECTOR, f".{k}").text for k in ("added", "changed", "deleted")] == [
        "1",
        "1",
        "0",
    ]
    assert "admin@example.com" in newest.find_element(By.CSS_SELECTOR, ".annotators").text
    source = newest.find_element(By.CSS_SELECTOR, ".sources .ps-id")
    assert source.find_element(By.TAG_NAME, "code").text.startswith(f"{s['texts']}@")
    synthetic = driver.find_element(By.CSS_SELECTOR, f"tr[data-commit='{s['history'][2]}']")
    assert [synthetic.find_element(By.CSS_SELECTOR, f".{k}").text for k in ("added", "changed", "deleted")] == [
        str((SYNTHETIC - 1) % 5),
        str((SYNTHETIC - 1) % 3),
        str((SYNTHETIC - 1) % 2),
    ]

    # the copy button puts the whole id on the clipboard
    driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"], "origin": lead.url},
    )
    newest.find_element(By.CSS_SELECTOR, ".ps-id .ps-copy").click()
    assert driver.execute_async_script("navigator.clipboard.readText().then(arguments[0])") == s["v2"]

    driver.find_element(By.ID, "next-page").click()
    until(lead, lambda: rows(lead) == s["history"][50:], "the second page never listed the oldest versions")
    assert driver.find_element(By.ID, "page-info").text == f"51–{s['count']} of {s['count']} · page 2 of 2"
    assert driver.find_element(By.ID, "next-page").get_attribute("disabled") == "true"
    shot(lead, "02-versions-page-2")
    assert sticking_out(driver) == []
    driver.find_element(By.ID, "prev-page").click()
    until(lead, lambda: len(rows(lead)) == 50, "back to the first page")


def test_a_comparison_and_a_restore_preview_in_label_studios_dialogs(lead, sixty):
    s, driver = sixty, lead.driver
    driver.get(versions_url(lead, s["target"]))
    until(lead, lambda: len(rows(lead)) == 50, "no versions listed")
    Select(driver.find_element(By.ID, "compare-from")).select_by_value(s["v1"])
    Select(driver.find_element(By.ID, "compare-to")).select_by_value(s["v2"])
    driver.find_element(By.ID, "compare-button").click()
    counts = until(lead, lambda: visible(lead, "#diff-dialog #diff-counts"), "no comparison shown")[0]
    assert "1 gained" in counts.text and "1 changed" in counts.text and "0 lost" in counts.text, counts.text
    assert {li.get_attribute("data-task") for li in css(lead, "#diff-result li.task")} == {
        str(s["tasks"][0]),
        str(s["tasks"][2]),
    }
    hrefs = {a.get_attribute("href") for a in css(lead, "#diff-result li.task a")}
    assert f"{lead.url}/projects/{s['project']}/data?task={s['tasks'][2]}" in hrefs
    assert css(lead, "#diff-dialog.lsf-modal-ls .lsf-modal-ls__content .lsf-modal-ls__title")  # Label Studio's dialog
    shot(lead, "03-compare-v1-v2")
    assert sticking_out(driver) == []
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    until(lead, lambda: not css(lead, "#diff-dialog"), "Escape did not close the comparison")

    before = len(s["ls"].api("GET", f"/api/tasks/{s['tasks'][3]}/annotations/", expect=200).json())
    pick_menu_item(lead, s["v1"], "restore-button")
    preview = until(lead, lambda: visible(lead, "#restore-preview #restore-counts"), "no restore preview")[0]
    assert "would create 0, update 1 and delete 2 annotation(s)" in preview.text, preview.text
    assert {li.get_attribute("data-task") for li in css(lead, "#restore-preview li.task")} == {
        str(t) for t in (s["tasks"][0], s["tasks"][2], s["tasks"][3])
    }
    assert len(s["ls"].api("GET", f"/api/tasks/{s['tasks'][3]}/annotations/", expect=200).json()) == before
    shot(lead, "04-restore-preview")
    assert sticking_out(driver) == []
    lead.button("Cancel").click()
    until(lead, lambda: not css(lead, "#restore-preview"), "Cancel did not close the preview")


def test_a_tag_from_a_rows_menu_is_a_pachyderm_branch(lead, sixty):
    s, driver = sixty, lead.driver
    driver.get(versions_url(lead, s["target"]))
    until(lead, lambda: len(rows(lead)) == 50, "no versions listed")
    pick_menu_item(lead, s["v1"], "tag-menu-item")
    name = until(lead, lambda: visible(lead, "#tag-dialog #tag-name"), "no tag dialog")[0]
    assert Select(driver.find_element(By.ID, "tag-commit")).first_selected_option.get_attribute("value") == s["v1"]
    name.send_keys("round 1")  # a name Pachyderm refuses: the rule is shown, nothing made
    driver.find_element(By.ID, "tag-button").click()
    until(
        lead,
        lambda: "only letters, digits, underscores and dashes" in driver.find_element(By.ID, "tag-message").text,
        "the refusal was not shown",
    )
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys(Keys.BACKSPACE, "round-1")
    driver.find_element(By.ID, "tag-button").click()
    until(
        lead,
        lambda: driver.find_element(By.ID, "tag-message").text == f"Tagged {s['v1'][:8]} as round-1",
        "the tag was not confirmed",
    )
    until(
        lead,
        lambda: "round-1" in driver.find_element(By.CSS_SELECTOR, f"tr[data-commit='{s['v1']}'] .tags").text,
        "the tag is not on v1's row",
    )
    head = s["pach"].pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{s['labels']}@round-1")).head.id
    assert head == s["v1"]


def test_metric_columns_take_what_the_api_gives_and_still_fit(lead, sixty):
    """Many metrics of two pipelines on 60 versions, without running jobs for each: the page's fetch
    is wrapped to add `metrics` and `health`, in the versions API's shapes, to the real answer (whose
    Target no pipeline reads), the one stand-in of this module. test_versions_metrics_browser.py
    shows them from real jobs."""
    s, driver = sixty, lead.driver
    driver.get(versions_url(lead, s["target"]))
    until(lead, lambda: len(rows(lead)) == 50, "no versions listed")
    driver.execute_script("""
        const real = window.fetch;
        window.fetch = async (url, options) => {
          const response = await real(url, options);
          if (!String(url).includes('/versions?')) return response;
          const data = await response.json();
          data.versions.forEach((v, i) => {
            v.metrics = {'default/train-classifier-with-a-long-name':
                           {accuracy: 0.9123 - i / 1000, f1_macro: 0.8, loss: 0.2512},
                         'default/evaluate': {precision_at_10: 0.75, recall: 0.5}};
            v.health = {tasks: 70, annotations: 60, skipped: 0, per_class: {cat: 40, dog: 20},
                        tasks_without_annotation: i, empty_results: 0, multi_labeled: 8, disagreements: 1,
                        agreement: 0.875};
          });
          return new Response(JSON.stringify(data), {status: response.status, headers: response.headers});
        };""")
    driver.find_element(By.ID, "refresh-button").click()
    cell = until(lead, lambda: visible(lead, f"tr[data-commit='{s['v2']}'] .metrics"), "no Metrics column")[0]
    # one line ending in "…" where the cell ends; all of them on hover
    assert cell.text == "accuracy 0.912 · f1_macro 0.8 · loss 0.251 · precision_at_10 0.75 · recall 0.5"
    assert driver.execute_script(
        "const e = arguments[0], s = getComputedStyle(e);"
        "return [s.textOverflow, s.whiteSpace, e.scrollWidth > e.clientWidth, e.getClientRects().length]", cell
    ) == ["ellipsis", "nowrap", True, 1]
    assert cell.get_attribute("title").split("\n") == [
        "default/train-classifier-with-a-long-name: accuracy = 0.912",
        "default/train-classifier-with-a-long-name: f1_macro = 0.8",
        "default/train-classifier-with-a-long-name: loss = 0.251",
        "default/evaluate: precision_at_10 = 0.75",
        "default/evaluate: recall = 0.5",
    ]
    health = driver.find_element(By.CSS_SELECTOR, f"tr[data-commit='{s['v2']}'] .health")
    assert health.text == "cat 40 · dog 20 · 0 unlabeled · 0 empty · agreement 87.5% (1 of 8 disagree)"
    assert health.get_attribute("title").split("\n") == [
        "annotations: 60",
        "per class: cat 40, dog 20",
        "tasks without annotation: 0",
        "annotations with an empty result: 0",
        "tasks labeled by more than one person: 8, of which disagreeing: 1",
        "agreement: 87.5%",
    ]
    assert sticking_out(driver) == []

    for key in ("accuracy", "loss", "recall"):  # three metrics get a column each
        driver.find_element(By.ID, "metric-columns").click()
        choice = until(
            lead,
            lambda: [e for e in visible(lead, ".ps-menu .metric-choice") if e.text.endswith(f": {key}")],
            f"no {key} in the metric columns menu",
        )[0]
        choice.click()
    headers = [th.text for th in css(lead, "#versions-table thead th")]
    assert headers[5:8] == ["accuracy", "loss", "recall"], headers
    newest = driver.find_element(By.CSS_SELECTOR, f"tr[data-commit='{s['v2']}']")
    assert [c.text for c in newest.find_elements(By.CSS_SELECTOR, "td .metric")] == ["0.912", "0.251", "0.5"]
    assert newest.find_element(By.CSS_SELECTOR, ".metrics").text == "f1_macro 0.8 · precision_at_10 0.75"  # not twice
    assert driver.find_element(By.ID, "metric-columns").text == "Metric columns (3/3)"
    shot(lead, "05-versions-with-metric-columns")
    assert sticking_out(driver) == []
    driver.execute_script("localStorage.clear()")


def test_a_tasks_history_page_inside_label_studios_frame(lead, sixty):
    s, driver = sixty, lead.driver
    task = s["tasks"][0]
    driver.get(f"{lead.url}/pachyderm/tasks/{task}/history")
    head = until(lead, lambda: visible(lead, "#history-body .annotation-title"), "the history never showed")[0]
    assert head.text == f"Annotation {s['first']} by admin@example.com"
    seen = frame(driver)
    assert seen["header"] and seen["logo"] and seen["menu"], seen
    assert seen["crumbs"] == ["Projects", s["title"], f"Task {task}", "History"], seen
    assert seen["links"] == [
        "/projects",
        f"/projects/{s['project']}/data",
        f"/projects/{s['project']}/data?task={task}",
    ]
    first = driver.find_element(By.CSS_SELECTOR, ".first-version code")
    assert first.text == s["v1"][:8] and first.get_attribute("title") == s["v1"]
    changes = [
        (r.get_attribute("data-commit"), r.find_element(By.CSS_SELECTOR, ".change").text)
        for r in css(lead, ".ps-history-versions tbody tr")
    ]
    assert changes == [(s["v1"], "added"), (s["v2"], "changed")]
    when = driver.find_element(By.CSS_SELECTOR, ".ps-history-versions time.ps-time")
    assert UTC.match(when.get_attribute("title")) and "ago" in when.text or when.text == "just now"
    source = driver.find_element(By.ID, "source")
    commit = s["pach"].pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{s['texts']}@master")).head.id
    assert source.get_attribute("title") == f"default/{s['texts']}@{commit}:/t0.json"
    assert "t0.json" in source.text and commit[:8] in source.text and commit not in source.text
    back = driver.find_element(By.CSS_SELECTOR, ".lsf-menu-header #back-to-task")
    assert back.get_attribute("href").endswith(f"/projects/{s['project']}/data?task={task}")
    looks_like_label_studio(driver, "#back-to-task")
    shot(lead, "06-task-history-page")
    assert sticking_out(driver) == []


def test_the_history_opens_beside_the_task_in_the_labeling_view(lead, sixty):
    """As a person gets there: the project list, the project, a task; Label Studio changes pages
    without reloading on the way."""
    s, driver = sixty, lead.driver
    driver.get(f"{lead.url}/projects")
    until(lead, lambda: visible(lead, f"a[href='/projects/{s['project']}/data']"), "the project is not listed")[
        0
    ].click()
    driver.execute_script("window.__pachstudioNoReload = true;")
    row = "//*[contains(text(), 'text number 0')]"
    until(
        lead,
        lambda: any(e.is_displayed() and (e.click() or True) for e in driver.find_elements(By.XPATH, row)),
        "the task's row never showed in the Data Manager",
    )
    until(lead, lambda: f"task={s['tasks'][0]}" in driver.current_url, "opening the task did not show it")
    button = until(lead, lambda: visible(lead, ".lsf-menu-header #pachstudio-task-history"), "no Task history button")[
        0
    ]
    links = visible(lead, ".lsf-menu-header .pachstudio-versions-link")
    assert [a.text for a in links] == ["Versions: Labels"]
    button.click()
    panel = until(lead, lambda: visible(lead, "#pachstudio-history-panel"), "no history panel")[0]
    until(lead, lambda: f"Annotation {s['first']} by admin@example.com" in panel.text, "the panel shows no history")
    assert [li.get_attribute("data-commit") for li in panel.find_elements(By.CSS_SELECTOR, ".ps-history-list li")] == [
        s["v1"],
        s["v2"],
    ]
    # beside the task: the labeling view's own buttons stay in view
    submit = [
        b for b in driver.find_elements(By.TAG_NAME, "button") if b.text in ("Update", "Submit") and b.is_displayed()
    ]
    assert submit, "no Update/Submit button in the labeling view"
    assert submit[0].rect["x"] + submit[0].rect["width"] <= panel.rect["x"], (submit[0].rect, panel.rect)
    shot(lead, "07-history-beside-the-task")
    assert ours(sticking_out(driver)) == []
    assert driver.execute_script("return window.__pachstudioNoReload === true;"), "the page was reloaded"

    # another task: the panel follows it
    until(
        lead,
        lambda: any(
            e.is_displayed() and (e.click() or True)
            for e in driver.find_elements(By.XPATH, "//*[contains(text(), 'text number 2')]")
        ),
        "no row of task 3",
    )
    until(
        lead,
        lambda: f"Task {s['tasks'][2]} history" in driver.find_element(By.ID, "pachstudio-history-panel").text,
        "the panel did not follow the open task",
    )
    driver.find_element(By.ID, "pachstudio-history-close").click()
    until(lead, lambda: not css(lead, "#pachstudio-history-panel"), "the panel did not close")

    # the Target's versions, from the header, without leaving the app
    visible(lead, ".lsf-menu-header .pachstudio-versions-link")[0].click()
    until(lead, lambda: len(rows(lead)) == 50, "the Versions link did not show the versions")
    assert driver.current_url.endswith(f"/pachyderm/targets/{s['target']}/versions")
    assert frame(driver)["crumbs"] == ["Projects", s["title"], "Versions"]
    assert driver.execute_script("return window.__pachstudioNoReload === true;"), "the page was reloaded"


def test_label_studios_own_data_manager_for_comparison(lead, sixty):
    driver = lead.driver
    driver.get(f"{lead.url}/projects/{sixty['project']}/data")
    until(lead, lambda: visible(lead, ".lsf-table-row"), "the Data Manager showed no task")
    time.sleep(1)  # its columns settle
    shot(lead, "00-label-studio-data-manager")


def test_no_versions_yet_says_to_press_sync(lead, sixty):
    s, ls = sixty, sixty["ls"]
    repo = f"fresh-{uuid.uuid4().hex[:6]}"
    s["pach"].pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    target = ls.create_target(s["project"], title="Fresh", repo=repo, prefix="ann")
    assert ls.wait_storage(target["id"], target=True)["status"] == "completed"
    lead.driver.get(versions_url(lead, target["id"]))
    box = until(lead, lambda: visible(lead, "#versions-state .ps-state-empty"), "no empty state")[0]
    assert "No versions yet" in box.text and "Press Sync on the Target" in box.text, box.text
    assert "change(s) are staged and wait for it" in box.text
    assert (
        box.find_element(By.ID, "open-storage")
        .get_attribute("href")
        .endswith(f"/projects/{s['project']}/settings/storage")
    )
    assert not visible(lead, "#versions-table")
    shot(lead, "08-no-versions-yet")
    ls.api("DELETE", f"/api/storages/export/pachyderm/{target['id']}", expect=204)


def test_a_confirmed_restore_says_what_it_did(lead, sixty):
    s, driver = sixty, lead.driver
    driver.get(versions_url(lead, s["target"]))
    until(lead, lambda: len(rows(lead)) == 50, "no versions listed")
    pick_menu_item(lead, s["v1"], "restore-button")
    until(lead, lambda: visible(lead, "#restore-counts"), "no restore preview")
    driver.find_element(By.ID, "restore-confirm").click()
    message = until(lead, lambda: visible(lead, "#restore-message p"), "no message after the restore")[0]
    assert message.text.startswith(f"Restored {s['v1'][:8]}: 0 created, 1 updated, 2 deleted.")
    assert s["ls"].api("GET", f"/api/tasks/{s['tasks'][2]}/annotations/", expect=200).json() == []
    [back] = s["ls"].api("GET", f"/api/tasks/{s['tasks'][0]}/annotations/", expect=200).json()
    assert back["result"][0]["value"]["choices"] == ["cat"]
    shot(lead, "09-restored")


# --- a cluster with auth: a token that may not see the pipelines; the mount server down ----------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, lead):
    """The embedded server with auth on; Label Studio's mount server holds a robot token that may
    write `labels` and read `texts`, but has no role on the pipeline that reads `labels`."""
    server = PfsServer(tmp_path_factory.mktemp("guarded-pfs") / "pfs", root_token=ROOT_TOKEN).start()
    root = server.root()
    for repo in ("texts", "labels"):
        root.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    commit_files(root, "texts@master", {"t.json": json.dumps({"text": "a cat"}).encode()})
    spec = json.loads(EXAMPLE.read_text())
    spec["input"]["pfs"].update(repo="labels", name="labels")
    root.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    token = root.auth.get_robot_token(robot="labeler").token
    for repo, role in (("labels", "repoWriter"), ("texts", "repoReader")):
        root.auth.modify_role_binding(
            resource=auth.Resource(type=auth.ResourceType.REPO, name=f"default/{repo}"),
            principal="robot:labeler",
            roles=[role],
        )
    home = tmp_path_factory.mktemp("guarded-mount")
    config = home / ".pachyderm" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(
        json.dumps(
            {
                "v2": {
                    "active_context": "lab",
                    "contexts": {"lab": {"pachd_address": server.address, "session_token": token}},
                }
            }
        )
    )
    ms = MountServer(home, None).start(timeout=60)
    ls = LabelStudio(tmp_path_factory.mktemp("guarded-ls"), ms.api, ms.mount_dir).start()
    project = ls.create_project(title="Guarded", label_config=CONFIG)["id"]
    source = ls.create_source(project, repo="texts")
    assert ls.sync(source["id"])["last_sync_count"] == 1
    ls.annotate(ls.tasks(project)[0]["id"], "cat")
    target = ls.create_target(project, title="Guarded labels", repo="labels")
    assert ls.wait_storage(target["id"], target=True)["status"] == "completed"
    version = ls.sync(target["id"], target=True)["meta"]["commit"]
    browser = StoragePage(lead.driver, ls, lead.screenshots, host="localhost")  # its own session cookie
    browser.login()
    yield {"ls": ls, "ms": ms, "target": target["id"], "version": version, "url": browser.url}
    ls.stop()
    ms.stop()
    server.kill()


def test_a_token_that_may_not_see_the_pipelines_is_told_so(lead, guarded):
    g, driver = guarded, lead.driver
    driver.get(f"{g['url']}/pachyderm/targets/{g['target']}/versions")
    until(lead, lambda: visible(lead, f"tr[data-commit='{g['version']}'] .jobs-button"), "no version listed")[0].click()
    warning = until(
        lead,
        lambda: visible(lead, f"tr[data-jobs-for='{g['version']}'] .ps-state-warning"),
        "no warning about the pipelines",
    )[0]
    assert "Your Pachyderm token may not see the pipelines" in warning.text, warning.text
    assert "you may not see the pipelines: " in warning.text and "robot:labeler is not authorized" in warning.text
    assert "Labels and versions still work" in warning.text
    shot(lead, "10-token-may-not-see-pipelines")
    assert sticking_out(driver) == []


def test_the_mount_server_not_answering_is_said_in_its_words_and_retry_recovers(lead, guarded):
    g, driver = guarded, lead.driver
    g["ms"].stop()
    try:
        driver.get(f"{g['url']}/pachyderm/targets/{g['target']}/versions")
        box = until(lead, lambda: visible(lead, "#versions-state .ps-state-error"), "no error state")[0]
        assert "The versions cannot be listed now" in box.text
        assert f"mount server unreachable at {g['ms'].api}: ConnectError" in box.text, box.text
        assert "The mount server or the Pachyderm cluster behind it did not answer" in box.text
        assert frame(driver)["crumbs"] == ["Projects", "Guarded", "Versions"]
        shot(lead, "11-mount-server-not-answering")
        assert sticking_out(driver) == []
    finally:
        g["ms"].start(timeout=60)
    driver.find_element(By.ID, "retry-versions").click()
    until(lead, lambda: visible(lead, f"tr[data-commit='{g['version']}']"), "Retry did not list the versions")
    assert not visible(lead, "#versions-state .ps-state-error")
