"""examples/model-loop as the README walks it, on the embedded server behind a real Label Studio:
try.py makes the image set, the repos, the train and predict pipelines and the project; 10 labels
and a Sync give an accuracy on the Versions page and a prediction for every image; 30 more and a
Sync give a second accuracy beside the first, higher."""
import importlib.util
import json
import pathlib
import re
import subprocess
import sys
import time

from ls_helpers import read

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "model-loop"


def example():
    spec = importlib.util.spec_from_file_location("model_loop_try", EXAMPLE / "try.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_specs_run_the_scripts_shipped_beside_them():
    for name in ("train", "predict"):
        spec = json.loads((EXAMPLE / f"{name}.json").read_text())
        assert spec["transform"]["stdin"] == (EXAMPLE / f"{name}.py").read_text().splitlines()


def versions_until_ended(labelstudio, target, commit, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        answer = labelstudio.api("GET", f"/api/storages/export/pachyderm/{target}/versions", expect=200).json()
        [version] = [v for v in answer["versions"] if v["commit"] == commit]
        if version["jobs"]["state"] == "ended" or time.monotonic() > deadline:
            return answer, version
        time.sleep(1)


def test_label_sync_see_the_accuracy_and_predictions_then_more_labels_raise_it(labelstudio, shared_pfs_server):
    pach = shared_pfs_server.client()
    cmd = [sys.executable, str(EXAMPLE / "try.py"), shared_pfs_server.address,
           "--label-studio", labelstudio.url, "--token", labelstudio.token]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "pipeline train created" in out.stdout and "pipeline predict created" in out.stdout, out.stdout
    target = int(re.search(r"/pachyderm/targets/(\d+)/versions", out.stdout).group(1))
    project = int(re.search(r"project (\d+):", out.stdout).group(1))
    labelstudio.wait_storage(target, target=True)
    truth = {path: cls for path, (_, cls) in example().make_images().items()}
    tasks = {t["data"]["pachyderm_path"]: t["id"] for t in labelstudio.tasks(project)}
    assert set(tasks) == set(truth)
    order = sorted(truth)

    def label(paths):
        for path in paths:
            result = [{"from_name": "class", "to_name": "image", "type": "choices",
                       "value": {"choices": [truth[path]]}}]
            labelstudio.api("POST", f"/api/tasks/{tasks[path]}/annotations", json={"result": result}, expect=201)

    label(order[:10])
    v1 = labelstudio.sync(target, target=True)["meta"]["commit"]
    answer, first = versions_until_ended(labelstudio, target, v1)
    assert first["jobs"]["failed"] == [], first["jobs"]
    figures = first["metrics"]["default/train"]
    assert figures["train_examples"] + figures["val_examples"] == 10 and figures["classes"] >= 2, figures
    assert 0 <= figures["accuracy"] <= 1
    assert {"pipeline": "default/train", "key": "accuracy"} in answer["metric_columns"]
    assert first["health"]["annotations"] == 10 and first["health"]["tasks_without_annotation"] == 50
    predictions = [json.loads(read(pach, "predict", f"{path}.json", v1)) for path in order]
    for prediction in predictions:
        assert prediction["model_version"] == f"train@{v1}" and 0 < prediction["score"] <= 1
        [region] = prediction["result"]
        assert (region["from_name"], region["to_name"], region["type"]) == ("class", "image", "choices")
        assert region["value"]["choices"][0] in ("red", "green", "blue")

    label(order[10:40])
    v2 = labelstudio.sync(target, target=True)["meta"]["commit"]
    answer, second = versions_until_ended(labelstudio, target, v2)
    rows = {v["commit"]: v for v in answer["versions"]}
    assert rows[v1]["metrics"]["default/train"]["accuracy"] == figures["accuracy"]  # the first beside it
    later = second["metrics"]["default/train"]
    assert later["train_examples"] + later["val_examples"] == 40
    assert later["accuracy"] > figures["accuracy"], (figures, later)
    again = json.loads(read(pach, "predict", f"{order[0]}.json", v2))
    assert again["model_version"] == f"train@{v2}"
