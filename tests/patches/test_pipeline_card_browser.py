"""The storage cards' Pipelines and Provenance items as a user meets them: real Chromium on real
Label Studio serving the patched bundle; a Target Sync starts a job of a (slow) label-counts
pipeline on the embedded server, and the card follows it from running to success without a reload."""
import json
import pathlib
import uuid

import pytest
from pachyderm_sdk.api import pfs, pps
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

pytestmark = pytest.mark.browser
EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "label-counts" / "pipeline.json"
CONFIG = ('<View><Text name="text" value="$text"/><Choices name="choice" toName="text">'
          '<Choice value="cat"/><Choice value="dog"/></Choices></View>')


def pipelines_text(page, title: str) -> str:
    """The text of the Pipelines/Provenance item of the card titled `title` ("" until shown)."""
    try:
        for card in page.driver.find_elements(By.CSS_SELECTOR, ".lsf-card"):
            if title in card.text:
                items = card.find_elements(By.CSS_SELECTOR, ".pachstudio-pipelines")
                return items[0].text if items else ""
    except StaleElementReferenceException:  # the card re-rendered meanwhile: read it again
        pass
    return ""


@pytest.fixture
def release():
    """A path the test creates once it has seen the job running: the datum waits for it (at most
    20 s). Under /tmp itself, where a datum of any user can see it."""
    path = pathlib.Path(f"/tmp/pachstudio-release-{uuid.uuid4().hex[:8]}")
    yield path
    path.unlink(missing_ok=True)


def test_the_target_card_follows_the_job_of_its_sync_to_success_without_a_reload(page, shared_pfs_server, release):
    ls, pach = page.ls, shared_pfs_server.client()
    tag = uuid.uuid4().hex[:8]
    source_repo, labels = f"texts-{tag}", f"labels-{tag}"
    for repo in (source_repo, labels):
        pach.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    with pach.pfs.commit(branch=pfs.Branch.from_uri(f"{source_repo}@master")) as c:
        for i in range(2):
            c.put_file_from_bytes(path=f"t{i}.json", data=json.dumps({"text": f"text {i}"}).encode())
    spec = json.loads(EXAMPLE.read_text())
    spec["pipeline"]["name"] = pipeline = f"counts-{tag}"
    spec["input"]["pfs"].update(repo=labels, name="labels")
    spec["transform"]["stdin"] = [  # running until the card was seen running
        "import os, time",
        "deadline = time.monotonic() + 20",
        f"while not os.path.exists({str(release)!r}) and time.monotonic() < deadline:",
        "    time.sleep(0.2)",
    ] + spec["transform"]["stdin"]
    pach.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))

    project = ls.create_project(title=f"pipelines {tag}", label_config=CONFIG)["id"]
    source = ls.create_source(project, title=f"Texts {tag}", repo=source_repo)
    assert ls.sync(source["id"])["last_sync_count"] == 2
    for task, label in zip(sorted(ls.tasks(project), key=lambda t: t["id"]), ("cat", "dog")):
        ls.annotate(task["id"], label)
    target = ls.create_target(project, title=f"Labels {tag}", repo=labels, prefix="ann")
    assert ls.wait_storage(target["id"], target=True)["status"] == "completed"
    other = ls.create_target(project, title=f"Review {tag}", repo=labels, branch="review", prefix="ann")
    assert ls.wait_storage(other["id"], target=True)["status"] == "completed"
    commit = ls.sync(target["id"], target=True)["meta"]["commit"]
    ls.sync(other["id"], target=True)

    page.driver.get(f"{page.url}/projects/{project}/settings/storage")
    page.driver.execute_script("window.__pachstudioNoReload = true;")
    running = page.wait.until(lambda d: (t := pipelines_text(page, f"Labels {tag}")) and f"default/{pipeline}" in t
                              and t, "the Target card never showed its pipeline")
    page.shot("pipelines-card-running")
    assert "success" not in running and "updating every 2 s" in running, running  # still running: it follows
    release.touch()
    done = page.wait.until(lambda d: "success" in (t := pipelines_text(page, f"Labels {tag}")) and t,
                           "the Target card never showed the job's success")
    page.shot("pipelines-card-success")
    assert page.driver.execute_script("return window.__pachstudioNoReload === true;"), "the page was reloaded"
    assert (f"default/{pipeline}: success, datums 1 processed, 0 skipped, 0 failed of 1, "
            f"output default/{pipeline}@{commit}") in done, done
    assert "updating" not in done
    job = pach.pps.inspect_job(job=pps.Job(pipeline=pps.Pipeline(name=pipeline), id=commit))
    assert job.state == pps.JobState.JOB_SUCCESS

    assert pipelines_text(page, f"Review {tag}") == f"no pipeline reads default/{labels}@review"
    assert pipelines_text(page, f"Texts {tag}").endswith("is not a pipeline output")

    # The Versions page tells the same per version, on demand, one line per job: the newest version is this Sync.
    page.driver.get(f"{page.url}/pachyderm/targets/{target['id']}/versions")
    row = page.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-commit='{commit}']"),
                          "the Versions page never listed the Sync's commit")[0]
    row.find_element(By.CSS_SELECTOR, ".jobs-button").click()
    line = f"tr[data-jobs-for='{commit}'] .job[data-pipeline='default/{pipeline}']"
    job = page.wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, line),
                          "the Versions page never showed the version's jobs")[0]
    page.shot("versions-page-jobs")
    assert job.find_element(By.CSS_SELECTOR, ".job-state").text == "success"
    assert job.find_element(By.CSS_SELECTOR, ".ps-job-name").text == f"default/{pipeline}"
    assert job.find_element(By.CSS_SELECTOR, ".job-datums").text == "1 processed · 0 skipped · 0 failed of 1"
    output = job.find_element(By.CSS_SELECTOR, ".job-output code")
    assert output.text == f"{pipeline}@{commit[:8]}"
    assert output.get_attribute("title") == f"default/{pipeline}@{commit}"
    assert job.size["height"] < 40, "a job takes more than one line"
