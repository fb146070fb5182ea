"""The Versions page's model loop as a user meets it in real Chromium: two Target Syncs start a
pipeline that writes metrics.json (accuracy grows with the label files); the page shows a metric
column per key with each version's figure, its health, Compare shows each metric's change, and
Tag output names the job's output commit as a branch of the pipeline's repo."""
import json
import uuid

import pytest
from pachyderm_sdk.api import pfs
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

pytestmark = pytest.mark.browser
CONFIG = ('<View><Text name="text" value="$text"/><Choices name="choice" toName="text">'
          '<Choice value="cat"/><Choice value="dog"/></Choices></View>')
SCRIPT = """import json, pathlib
n = len(list(pathlib.Path("/pfs/{repo}").rglob("*.json")))
pathlib.Path("/pfs/out/metrics.json").write_text(json.dumps({{"accuracy": n / 4}}))
"""


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

    page.driver.get(f"{page.url}/pachyderm/targets/{target['id']}/versions")
    key = f"default/{pipeline}"

    def metric(commit):
        cells = page.driver.find_elements(By.CSS_SELECTOR, f"tr[data-commit='{commit}'] td.metric[data-key=accuracy]")
        return cells[0].text if cells else ""

    page.wait.until(lambda d: metric(v1) and metric(v2), "the page never showed both versions' accuracy")
    page.shot("versions-metrics")
    assert (metric(v1), metric(v2)) == ("0.25", "0.75")
    header = [th.text for th in page.driver.find_elements(By.CSS_SELECTOR, "#versions-head .metric-head")]
    assert header == [f"{pipeline} · accuracy".upper()] or header == [f"{pipeline} · accuracy"], header
    assert page.driver.find_element(By.ID, "jobs-note").text == ""
    health = page.driver.find_element(By.CSS_SELECTOR, f"tr[data-commit='{v2}'] td.health").text
    assert "cat 2, dog 1; 0 task(s) unlabeled; 0 empty result(s)" in health, health

    Select(page.driver.find_element(By.ID, "compare-from")).select_by_value(v1)
    Select(page.driver.find_element(By.ID, "compare-to")).select_by_value(v2)
    page.driver.find_element(By.ID, "compare-button").click()
    row = page.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"tr.metric-change[data-pipeline='{key}']"),
                          "Compare never showed the metric's change")[0]
    page.shot("versions-compare-metrics")
    assert [td.text for td in row.find_elements(By.TAG_NAME, "td")] == [f"{pipeline} · accuracy", "0.25", "0.75",
                                                                         "+0.5"]

    page.driver.find_element(By.CSS_SELECTOR, f"tr[data-commit='{v1}'] .job-tag-row").click()
    name = page.driver.find_element(By.ID, "job-tag-name")
    assert page.driver.switch_to.active_element == name
    name.send_keys("best-model")
    page.driver.find_element(By.ID, "job-tag-button").click()
    message = page.wait.until(lambda d: (t := d.find_element(By.ID, "job-tag-message").text) and t,
                              "tagging never answered")
    assert message == f"Tagged {key}@{v1[:8]} as best-model", message
    page.wait.until(lambda d: "best-model" in d.find_element(By.CSS_SELECTOR, f"tr[data-commit='{v1}'] td.health").text,
                    "the row never showed its output's tag")
    page.shot("versions-tag-output")
    assert pach.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{pipeline}@best-model")).head.id == v1
