"""Steps the fault tests share: a user's path through the appliance (import, label, Sync), what
the storage card and the mount server say, and the final check of every label through the SDK."""
import json
import time

from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from plugins.image import files_at, put_json_tasks  # noqa: F401 - files_at is one of the steps

TEXTS = {f"tasks/{i}.json": text for i, text in enumerate([
    "a cat on a mat", "a dog in a fog", "a cat in a hat", "a dog on a log", "a cat at bat", "a dog and a frog"])}
TARGET = "/api/storages/export/pachyderm"
SOURCE = "/api/storages/pachyderm"


# -- the cluster, through the ordinary SDK ---------------------------------------------------------
def put_source_files(client: Client, repo="images"):
    put_json_tasks(client, TEXTS, repo)


def commits(client: Client, repo: str) -> list:
    return list(client.pfs.list_commit(repo=pfs.Repo.from_uri(repo)))


def head(client: Client, repo: str, branch="master") -> str:
    return client.pfs.inspect_branch(branch=pfs.Branch.from_uri(f"{repo}@{branch}")).head.id


def read_json(client: Client, uri: str):
    with client.pfs.pfs_file(file=pfs.File.from_uri(uri)) as f:
        return json.loads(f.read())


# -- Label Studio, through its REST API --------------------------------------------------------------
def card(api, target) -> dict:
    """The Target's card as the storage settings page gets it: from the list, which also runs
    Label Studio's health check (it fails jobs it believes dead)."""
    for storage in api.call("GET", f"/api/storages/export?project={target['project']}"):
        if storage["id"] == target["id"]:
            return storage
    raise AssertionError(f"target {target['id']} is not listed")


def wait_card(api, read, want="completed", timeout=240) -> dict:
    """The storage card once its job has ended; fails with the card when it ended otherwise.
    `read` is the storage's API path or a function returning the card."""
    get = read if callable(read) else (lambda: api.call("GET", read))
    deadline = time.monotonic() + timeout
    while True:
        storage = get()
        if storage.get("status") in ("completed", "failed"):
            assert storage["status"] == want, storage
            return storage
        assert time.monotonic() < deadline, f"still {storage.get('status')} after {timeout}s: {storage}"
        time.sleep(0.5)


def sync(api, target, want="completed", timeout=240) -> dict:
    api.call("POST", f"{TARGET}/{target['id']}/sync")
    return wait_card(api, lambda: card(api, target), want, timeout)


def annotate(api, task, choice=None):
    choice = choice or ("cat" if "cat" in task["data"]["text"] else "dog")
    result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}]
    return api.call("POST", f"/api/tasks/{task['id']}/annotations/", json={"result": result})


def import_and_label(api, client, labels_repo="labels", annotate_first=3):
    """Project, Pachyderm Source over `images` (synced), Target on the new repo `labels_repo`,
    and the first tasks labeled: the staged work a fault must not lose."""
    client.pfs.create_repo(repo=pfs.Repo.from_uri(labels_repo))
    project = api.create_project()
    source = api.call("POST", SOURCE, json={
        "project": project["id"], "title": "images", "pach_project": "default", "repo": "images",
        "branch": "master", "prefix": "tasks", "use_blob_urls": False, "recursive_scan": True})
    api.call("POST", f"{SOURCE}/{source['id']}/sync")
    wait_card(api, f"{SOURCE}/{source['id']}")
    tasks = sorted(api.tasks(project["id"]), key=lambda t: t["id"])
    assert sorted(t["data"]["text"] for t in tasks) == sorted(TEXTS.values())
    target = api.call("POST", TARGET, json={
        "project": project["id"], "title": "labels", "pach_project": "default", "repo": labels_repo,
        "branch": "master", "prefix": "annotations", "file_format": "annotation"})
    wait_card(api, lambda: card(api, target))  # creation stages what exists
    annotations = [annotate(api, t) for t in tasks[:annotate_first]]
    return project, target, tasks, annotations


def annotations_of(api, project) -> dict:
    """Every annotation Label Studio holds for the project: id -> result."""
    out = {}
    for task in api.tasks(project["id"]):
        for ann in api.call("GET", f"/api/tasks/{task['id']}/annotations/"):
            out[ann["id"]] = ann["result"]
    return out


# -- inside the appliance ------------------------------------------------------------------------------
SUPERVISORCTL = ("supervisorctl", "-c", "/run/pachstudio/supervisord.conf")


def mount_server(app, path: str, timeout=30):
    """GET on the mount server's loopback API (not published), from inside the container."""
    code = ("import json, sys, urllib.request; "
            f"print(urllib.request.urlopen('http://127.0.0.1:9002{path}', timeout={timeout}).read().decode())")
    rc, out = app.exec("python3", "-c", code)
    assert rc == 0, out
    return json.loads(out)


def rw_mount(app, repo="labels") -> dict:
    for m in mount_server(app, "/mounts")["mounted"]:
        if m["mode"] == "rw" and m["repo"] == repo:
            return m
    raise AssertionError(f"no read-write mount of {repo}: {mount_server(app, '/mounts')}")


def staged_labels(app, repo="labels") -> dict:
    """Staged files of the Target's mount, read back from /pfs: path -> annotation id in the file."""
    mount = rw_mount(app, repo)
    staged = mount_server(app, f"/mounts/{mount['name']}/staged")
    code = ("import json, sys; paths = json.loads(sys.argv[1]); "
            "print(json.dumps({p: json.load(open(sys.argv[2] + '/' + p))['id'] for p in paths}))")
    rc, out = app.exec("python3", "-c", code, json.dumps(staged["added"] + staged["changed"]), mount["mountpoint"])
    assert rc == 0, out
    return json.loads(out)


def pid_of(app, program: str) -> int:
    rc, out = app.exec(*SUPERVISORCTL, "pid", program)
    return int(out.strip()) if out.strip().isdigit() else 0


def kill9(app, program: str) -> int:
    pid = pid_of(app, program)
    assert pid > 0, f"{program} is not running"
    rc, out = app.exec("sh", "-c", f"kill -9 {pid}")
    assert rc == 0, out
    return pid


def wait_restarted(app, program: str, old_pid: int, timeout=120) -> int:
    """supervisord's verdict: the program RUNNING again under a new pid."""
    deadline = time.monotonic() + timeout
    while True:
        rc, out = app.exec(*SUPERVISORCTL, "status", program)
        pid = pid_of(app, program)
        if "RUNNING" in out and pid not in (0, old_pid):
            return pid
        assert time.monotonic() < deadline, f"{program} not restarted after {timeout}s: {out}"
        time.sleep(0.5)


def wait_for(check, what: str, timeout=120, every=0.5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - not yet; the last error is shown at the deadline
            last = exc
        else:
            last = value
        assert time.monotonic() < deadline, f"{what}: not after {timeout}s (last: {last!r})"
        time.sleep(every)


# -- the verdicts ----------------------------------------------------------------------------------------
def one_new_commit(client, repo, before: set):
    new = [c for c in commits(client, repo) if c.commit.id not in before]
    assert len(new) == 1, f"expected exactly one new commit in {repo}, got {len(new)}"
    return new[0]


def new_files_of(client, repo, info) -> set:
    files = files_at(client, f"{repo}@{info.commit.id}:/")
    parent = info.parent_commit
    old = files_at(client, f"{repo}@{parent.id}:/") if parent and parent.id else set()
    return files - old


def check_every_label(api, client, project, repo="labels", prefix="annotations") -> int:
    """Every annotation Label Studio holds is one file at the branch head, holding that
    annotation's latest result; nothing else is there. Returns how many."""
    held = annotations_of(api, project)
    assert held, "no annotations to check"
    at_head = files_at(client, f"{repo}@master:/")
    assert at_head == {f"/{prefix}/{i}.json" for i in held}, (sorted(at_head), sorted(held))
    for ann_id, result in held.items():
        content = read_json(client, f"{repo}@master:/{prefix}/{ann_id}.json")
        assert content["id"] == ann_id and content["result"] == result, (ann_id, content)
    return len(held)
