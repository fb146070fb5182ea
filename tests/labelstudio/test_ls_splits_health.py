"""Frozen splits and the health of a version, through real Target Syncs read back with the SDK:
each task's split follows from its source path and the seed (worked out here from the documented
rule), stays as the project grows, and is in every label file, the manifest and the exports; the
health figures of a crafted project match the answers known by construction."""
import hashlib
import json
import subprocess
import sys

import requests
from ls_helpers import TEXT_CONFIG, error_text, listing, make_repo, put, read
from test_ls_exports import BOX_CONFIG, PNG, box

from plugins.labelstudio import label_studio_dir

OTHER, OTHER_TOKEN = "second-labeler@example.com", "second-labeler-token-0123"
MAKE_OTHER = f"""
import django
django.setup()
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
org = Organization.objects.order_by("id").first()
user = User.objects.filter(email={OTHER!r}).first() or User.objects.create_user(email={OTHER!r}, password="pw-0123456")
org.add_user(user)
user.active_organization = org
user.save(update_fields=["active_organization"])
Token.objects.filter(user=user).exclude(key={OTHER_TOKEN!r}).delete()
Token.objects.get_or_create(user=user, key={OTHER_TOKEN!r})
print("made")
"""


def split_of(path, seed="3", parts=(("train", 50), ("val", 50))):
    """The documented rule: sha256(seed + newline + source path), first 8 bytes / 2^64 against the
    cumulative shares."""
    point = int.from_bytes(hashlib.sha256(f"{seed}\n{path}".encode()).digest()[:8], "big") / 2**64
    total, edge = sum(w for _, w in parts), 0
    for name, weight in parts:
        edge += weight / total
        if point < edge:
            return name
    return parts[-1][0]


def choice(label):
    return [{"from_name": "choice", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]


def second_labeler(labelstudio):
    env = dict(labelstudio.env(), PYTHONPATH=label_studio_dir())
    out = subprocess.run([sys.executable, "-c", MAKE_OTHER], env=env, cwd=labelstudio.root,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "made" in out.stdout, out.stderr[-2000:]
    http = requests.Session()
    http.headers["Authorization"] = f"Token {OTHER_TOKEN}"
    return http


def test_health_of_a_crafted_project_and_splits_frozen_as_it_grows(labelstudio, ls_pach):
    other = second_labeler(labelstudio)
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {f"t{i}.json": json.dumps({"text": f"text {i}"}) for i in range(6)})
    project = labelstudio.create_project(title="health", label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project["id"], repo=repo)
    labelstudio.sync(source["id"])
    t = {task["data"]["pachyderm_path"]: task["id"] for task in labelstudio.tasks(project["id"])}
    ids = [t[f"t{i}.json"] for i in range(6)]

    def annotate(task_id, result, who=None, **extra):
        url = f"{labelstudio.url}/api/tasks/{task_id}/annotations"
        r = (who or labelstudio.session).post(url, json={"result": result, **extra}, timeout=60)
        assert r.status_code == 201, r.text

    annotate(ids[0], choice("cat"))
    annotate(ids[1], choice("dog"))
    annotate(ids[1], choice("dog"), other)  # two people agree
    annotate(ids[2], choice("cat"))
    annotate(ids[2], choice("dog"), other)  # two people disagree
    annotate(ids[3], [])  # an empty result
    annotate(ids[4], [], was_cancelled=True)  # skipped: not an annotation of the task
    labels = make_repo(ls_pach)
    bad = labelstudio.api("POST", "/api/storages/export/pachyderm",
                          json={"project": project["id"], "repo": labels, "splits": "train 80, val"}, expect=400)
    assert "splits: val needs a positive number as its share" in error_text(bad)
    for rule, why in (("train 80", "one part splits nothing"), ("seed 3", "a seed alone splits nothing"),
                      ("train 1, train 2", "train is named twice"), ("tr@in 1, val 1", "is not a split name")):
        bad = labelstudio.api("POST", "/api/storages/export/pachyderm",
                              json={"project": project["id"], "repo": labels, "splits": rule}, expect=400)
        assert why in error_text(bad), error_text(bad)
    target = labelstudio.create_target(project["id"], repo=labels, prefix="ann", layout="source_path",
                                       splits="train=50; val: 50, seed=3")
    assert target["splits"] == "train 50, val 50, seed 3"
    labelstudio.wait_storage(target["id"], target=True)
    v1 = labelstudio.sync(target["id"], target=True)["meta"]["commit"]

    expected = {"tasks": 6, "annotations": 6, "skipped": 1, "per_class": {"dog": 3, "cat": 2},
                "tasks_without_annotation": 2, "empty_results": 1, "multi_labeled": 2, "disagreements": 1,
                "agreement": 0.5}
    versions = labelstudio.api("GET", f"/api/storages/export/pachyderm/{target['id']}/versions", expect=200).json()
    [version] = [v for v in versions["versions"] if v["commit"] == v1]
    assert version["health"] == expected
    manifest = json.loads(read(ls_pach, labels, "ann/exports/manifest.json", v1))
    assert manifest["health"] == {**expected, "disagreeing_tasks": [ids[2]]}
    first = {f"t{i}.json": split_of(f"t{i}.json") for i in range(5)}  # t5 has no annotation: no file
    for path, split in first.items():
        assert json.loads(read(ls_pach, labels, f"ann/{path}.json", v1))["split"] == split
    assert manifest["splits"]["rule"] == "train 50, val 50, seed 3"
    assert manifest["splits"]["tasks"] == {s: [t[p] for p in sorted(first, key=t.get) if first[p] == s]
                                           for s in ("train", "val")}

    # the project grows: old tasks keep their split, new ones get theirs by the same rule
    put(ls_pach, repo, {f"n{i}.json": json.dumps({"text": f"new {i}"}) for i in range(20)})
    labelstudio.sync(source["id"])
    t = {task["data"]["pachyderm_path"]: task["id"] for task in labelstudio.tasks(project["id"])}
    for i in range(20):
        annotate(t[f"n{i}.json"], choice("cat"))
    annotate(ids[0], choice("dog"), other)  # rewrites t0's file
    v2 = labelstudio.sync(target["id"], target=True)["meta"]["commit"]
    grown = json.loads(read(ls_pach, labels, "ann/exports/manifest.json", v2))
    for path in list(first) + [f"n{i}.json" for i in range(20)]:
        assert json.loads(read(ls_pach, labels, f"ann/{path}.json", v2))["split"] == split_of(path), path
    for split, task_ids in manifest["splits"]["tasks"].items():
        assert set(task_ids) <= set(grown["splits"]["tasks"][split])
    assert sum(grown["splits"]["counts"].values()) == 25
    assert grown["health"]["multi_labeled"] == 3 and grown["health"]["disagreements"] == 2

    # a new rule re-splits: the next Sync writes every label file again, with its new split
    labelstudio.api("PATCH", f"/api/storages/export/pachyderm/{target['id']}",
                    json={"splits": "a 1, b 1, c 1, seed 9"}, expect=200)
    done = labelstudio.sync(target["id"], target=True)
    assert done["meta"]["changed"] == 25, done["meta"]
    parts = (("a", 1), ("b", 1), ("c", 1))
    for path in ("t0.json", "n7.json"):
        split = json.loads(read(ls_pach, labels, f"ann/{path}.json", done["meta"]["commit"]))["split"]
        assert split == split_of(path, "9", parts)


def test_training_exports_are_written_per_split(labelstudio, ls_pach):
    files = [f"img/{i}.png" for i in range(8)]
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {path: PNG for path in files})
    project = labelstudio.create_project(title="split boxes", label_config=BOX_CONFIG)
    source = labelstudio.create_source(project["id"], repo=repo, prefix="img", use_blob_urls=True)
    labelstudio.sync(source["id"])
    tasks = {task["data"]["pachyderm_path"]: task["id"] for task in labelstudio.tasks(project["id"])}
    for path, task_id in tasks.items():
        labelstudio.api("POST", f"/api/tasks/{task_id}/annotations", json={"result": box("cat")}, expect=201)
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project["id"], repo=labels, prefix="labels", export_formats=["COCO"],
                                       splits="train 50, val 50, seed 3")
    labelstudio.wait_storage(target["id"], target=True)
    commit = labelstudio.sync(target["id"], target=True)["meta"]["commit"]

    present = listing(ls_pach, labels, commit)
    manifest = json.loads(read(ls_pach, labels, "labels/exports/manifest.json", commit))
    expected = {"train": [], "val": []}
    for path in files:
        expected[split_of(path)].append(f"/pfs/{repo}/{path}")
    for split, images in expected.items():
        assert f"labels/exports/COCO/{split}/result.json" in present
        coco = json.loads(read(ls_pach, labels, f"labels/exports/COCO/{split}/result.json", commit))
        assert sorted(i["file_name"] for i in coco["images"]) == sorted(images)
        assert manifest["formats"]["COCO"]["splits"][split]["folder"] == f"exports/COCO/{split}"
    assert {e["file"]: e["split"] for e in manifest["images"]} == {
        f"/pfs/{repo}/{p}": split_of(p) for p in files}
    assert not any(p.startswith("labels/exports/COCO/result") for p in present)
