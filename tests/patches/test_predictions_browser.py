"""A pipeline's predictions as pre-annotations, as a labeler meets them: real Chromium on real Label
Studio serving the patched bundle, a Source with `predictions_from` synced once. The storage card
says what the Sync added; the Data Manager counts the task's prediction; opening the task, and the
label stream, show the predicted choice already selected; a task without a prediction shows none."""
import json
import uuid

import pytest
from pachyderm_sdk.api import pfs
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from .storage_page import click_visible

pytestmark = pytest.mark.browser

TEXT_CONFIG = ('<View><Text name="text" value="$text"/><Choices name="choice" toName="text">'
               '<Choice value="cat"/><Choice value="dog"/></Choices></View>')


def choices_checked(driver) -> dict | None:
    """{"cat": bool, "dog": bool} of the labeling view's choices, None until both are shown."""
    try:
        boxes = {label: driver.find_elements(By.CSS_SELECTOR, f".lsf-choices input[name='{label}']")
                 for label in ("cat", "dog")}
        if not all(boxes.values()):
            return None
        return {label: found[0].is_selected() for label, found in boxes.items()}
    except StaleElementReferenceException:
        return None


PREDICTIONS_CELL = """
const heads = [...document.querySelectorAll('.lsf-table-head .lsf-table__cell')];
const at = heads.findIndex(h => h.getAttribute('data-id') === 'tasks:total_predictions');
const row = [...document.querySelectorAll('[data-testid=table-row]')]
    .find(r => r.textContent.includes(arguments[0]));
return at >= 0 && row ? row.querySelectorAll('.lsf-table__cell')[at].textContent : null;
"""




def test_predictions_from_pachyderm_are_pre_annotations(page, shared_pfs_server):
    ls, pach = page.ls, shared_pfs_server.client()
    tag = uuid.uuid4().hex[:8]
    texts, predict = f"texts-{tag}", f"predict-{tag}"
    for repo in (texts, predict):
        pach.pfs.create_repo(repo=pfs.Repo.from_uri(f"default/{repo}"))
    with pach.pfs.commit(branch=pfs.Branch.from_uri(f"default/{texts}@master")) as c:
        c.put_file_from_bytes(path="kitten.json", data=json.dumps({"text": "a kitten on a sofa"}).encode())
        c.put_file_from_bytes(path="puppy.json", data=json.dumps({"text": "a puppy in the garden"}).encode())
    prediction = {"result": [{"from_name": "choice", "to_name": "text", "type": "choices",
                              "value": {"choices": ["dog"]}}], "score": 0.8}  # wrong on purpose: it shows
    with pach.pfs.commit(branch=pfs.Branch.from_uri(f"default/{predict}@master")) as c:
        c.put_file_from_bytes(path="kitten.json.json", data=json.dumps(prediction).encode())
    head = c.id
    project = ls.create_project(title=f"predictions {tag}", label_config=TEXT_CONFIG)["id"]
    source = ls.create_source(project, title=f"Texts {tag}", repo=texts, predictions_from=f"{predict}@master")
    done = ls.sync(source["id"])
    assert done["last_sync_count"] == 2 and done["meta"]["predictions"]["added"] == 1, done
    kitten, puppy = sorted(ls.tasks(project), key=lambda t: t["data"]["text"])
    assert kitten["data"]["text"] == "a kitten on a sofa"
    driver = page.driver

    # The Source's card says what its Sync did with the predictions.
    driver.get(f"{page.url}/projects/{project}/settings/storage")
    page.wait.until(lambda d: f"1 prediction(s) added to 1 task(s) from default/{predict}@master at {head[:12]}"
                    in d.find_element(By.TAG_NAME, "body").text, "the card never said what the Sync added")
    page.shot("predictions-card")

    # The Data Manager's Predictions column counts it.
    driver.get(f"{page.url}/projects/{project}/data")
    page.wait.until(lambda d: d.execute_script(PREDICTIONS_CELL, "a kitten on a sofa") == "1",
                    "the Predictions column does not count the kitten's prediction")
    assert driver.execute_script(PREDICTIONS_CELL, "a puppy in the garden") == "0"
    assert "Predictions: 1" in driver.find_element(By.TAG_NAME, "body").text
    page.shot("data-manager")

    # Opening the task shows the predicted choice already selected.
    kitten_row = "//*[normalize-space(text())='a kitten on a sofa']"
    page.wait.until(lambda d: click_visible(d, kitten_row), "the task's row never showed")
    page.wait.until(lambda d: f"task={kitten['id']}" in d.current_url, "opening the task did not show it")
    page.wait.until(lambda d: choices_checked(d) == {"cat": False, "dog": True},
                    f"the prediction is not pre-selected: {choices_checked(driver)}")
    page.shot("task-pre-annotated")

    driver.get(f"{page.url}/projects/{project}/data?task={puppy['id']}")
    page.wait.until(lambda d: "a puppy in the garden" in d.find_element(By.TAG_NAME, "body").text
                    and choices_checked(d) is not None, "the other task never opened")
    assert choices_checked(driver) == {"cat": False, "dog": False}

    # The label stream ("Label All Tasks") shows the project's model version: the newest predictions.
    assert ls.api("GET", f"/api/projects/{project}", expect=200).json()["model_version"] == f"{predict}@{head}"
    driver.get(f"{page.url}/projects/{project}/data?labeling=1")
    page.wait.until(lambda d: "a kitten on a sofa" in d.find_element(By.TAG_NAME, "body").text
                    and choices_checked(d) == {"cat": False, "dog": True},
                    f"the label stream does not pre-select the prediction: {choices_checked(driver)}")
    page.shot("label-stream-pre-annotated")
