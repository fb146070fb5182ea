"""The Versions page's model loop as a user meets it in real Chromium: two Target Syncs start a
pipeline that writes metrics.json (accuracy grows with the label files); the page shows the metric
in a column with each version's figure, its health, Compare shows each metric's change, and the
row's "Tag output" names the job's output commit as a branch of the pipeline's repo."""
import json
import uuid

import pytest
from pachyderm_sdk.api import pfs
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

pytestmark = pytest.mark.browser
CONFIG = ('<View><Text name="text" value="$text"/><Choices name="choice" toName="text">'
          '<Choice value="cat"/><Choice value="dog"/></Choices></View>')
SCRIPT = """import json, pathlib
n = len(list(pathlib.Path("/pfs/{repo}").rglob("*.json")))
pathlib.Path("/pfs/out/metrics.json").write_text(json.dumps({{"accuracy": n / 4}}))
"""


def shown(page, selector):
    """The texts of what the page shows at `selector` (an element re-drawn meanwhile: none yet)."""
    try:
        return [e.text for e in page.driver.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()]
    except StaleElementReferenceException:
        return []


def test_metric_columns_health_compare_and_tag_output(page, shared_pfs_server):
    ls, pach = page.ls, shared_pfs_server.client()
    tag = uuid.uuid4().hex[:8]
    source_repo, labels, pipeline = f"texts-{tag}", f"labels-{tag}", f"train-{tag}"
    for repo in (source_repo, labels):
        pach.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    with pach.pfs.commit(branch=pfs.Branch.from_uri(f"{source_repo}@master")) as c:
        for i in range(3):
            c.put_file_from_bytes(path=f"t{i}.json", data=json.dumps({"text": f"text {i}"}).encode())
    spec = {"pipeline": {"name": pipeline},
            "transform": {"image": "python:3.11-slim", "cmd": ["python3"],
                          "stdin": SCRIPT.format(repo=labels).splitlines()},
            "input": {"pfs": {"repo": labels, "branch": "master", "glob": "/"}}}
    pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))
    project = ls.create_project(title=f"metrics {tag}", label_config=CONFIG)["id"]
    source = ls.create_source(project, title=f"Texts {tag}", repo=source_repo)
    ls.sync(source["id"])
    tasks = sorted(ls.tasks(project), key=lambda t: t["id"])
    target = ls.create_target(project, title=f"Labels {tag}", repo=labels, prefix="ann")
    ls.wait_storage(target["id"], target=True)
    ls.annotate(tasks[0]["id"], "cat")
    v1 = ls.sync(target["id"], target=True)["meta"]["commit"]
    ls.annotate(tasks[1]["id"], "dog")
    ls.annotate(tasks[2]["id"], "cat")
    v2 = ls.sync(target["id"], target=True)["meta"]["commit"]

    driver = page.driver
    driver.execute_script("localStorage.clear()")  # no metric columns chosen before: the API's are shown
    driver.get(f"{page.url}/pachyderm/targets/{target['id']}/versions")
    key = f"default/{pipeline}"

    def metric(commit):
        return shown(page, f"tr[data-commit='{commit}'] td .metric")

    # jobs still running when the page loads: it says so and looks again until they end
    page.wait.until(lambda d: metric(v1) == ["0.25"] and metric(v2) == ["0.75"],
                    "the page never showed both versions' accuracy")
    page.shot("versions-metrics")
    column = [th for th in driver.find_elements(By.CSS_SELECTOR, "#versions-table thead th") if th.text == "accuracy"]
    assert [th.get_attribute("title") for th in column] == [f"{key}: accuracy"]
    assert not driver.find_element(By.ID, "jobs-note").is_displayed()
    health = driver.find_element(By.CSS_SELECTOR, f"tr[data-commit='{v2}'] .health")
    assert health.text == "cat 2 · dog 1 · 0 unlabeled · 0 empty", health.text
    assert "tasks labeled by more than one person: 0, of which disagreeing: 0" in health.get_attribute("title")

    Select(driver.find_element(By.ID, "compare-from")).select_by_value(v1)
    Select(driver.find_element(By.ID, "compare-to")).select_by_value(v2)
    driver.find_element(By.ID, "compare-button").click()
    page.wait.until(lambda d: shown(page, f"#diff-dialog tr.metric-change[data-pipeline='{key}']"),
                    "Compare never showed the metric's change")
    page.shot("versions-compare-metrics")
    cells = shown(page, f"#diff-dialog tr.metric-change[data-pipeline='{key}'] td")
    assert cells == [f"{pipeline} · accuracy", "0.25", "0.75", "+0.5"], cells
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    page.wait.until(lambda d: not shown(page, "#diff-dialog"), "the Compare dialog did not close")

    driver.find_element(By.CSS_SELECTOR, f"tr[data-commit='{v1}'] .row-menu").click()
    page.wait.until(lambda d: shown(page, ".ps-menu .job-tag-menu-item"), "no Tag output in the row's menu")
    assert shown(page, ".ps-menu .job-tag-menu-item") == [f"Tag {pipeline}'s output…"]
    driver.find_element(By.CSS_SELECTOR, ".ps-menu .job-tag-menu-item").click()
    name = page.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#job-tag-dialog #job-tag-name"),
                           "no Tag output dialog")[0]
    assert driver.switch_to.active_element == name
    assert Select(driver.find_element(By.ID, "job-tag-pipeline")).first_selected_option.get_attribute("value") == key
    name.send_keys("best-model")
    driver.find_element(By.ID, "job-tag-button").click()
    message = page.wait.until(lambda d: d.find_element(By.ID, "job-tag-message").text, "tagging never answered")
    assert message == f"Tagged {key}@{v1[:8]} as best-model", message
    page.wait.until(lambda d: shown(page, f"tr[data-commit='{v1}'] .output-tags") == [f"{pipeline}: best-model"],
                    "the row never showed its output's tag")
    page.shot("versions-tag-output")
    assert pach.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{pipeline}@best-model")).head.id == v1
