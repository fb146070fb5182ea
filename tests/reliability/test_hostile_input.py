"""Hostile and bad input: storage forms, repo contents and data URLs with `..`, absolute paths, NUL
and control characters, very long names, unicode and names Pachyderm rejects; a 2 GiB file, empty
and non-JSON files, a JSON file of 100,000 tasks; malformed config.json files and a wrong token.
Each gets a clean answer with its reason, and nothing is written outside /pfs and the staging folder."""
import base64
import json
import time
import uuid
from dataclasses import dataclass

import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from plugins.image import sdk_client

from .appliance_steps import (
    BLOB_CONFIG,
    SOURCE,
    TARGET,
    add_source,
    add_target,
    choice_result,
    create_project,
    create_repo,
    files_at,
    put_files,
    read_json,
    sync_source,
    sync_target,
    task_count,
)

CANARY = f"pachstudio-canary-token-{uuid.uuid4().hex}"
START_MARKER = "/run/pachstudio/reliability-tests-start"


@dataclass
class Env:
    app: object
    client: Client
    api: object
    project: dict


@pytest.fixture(scope="module")
def env(module_appliances, module_network):
    """One appliance (embedded server, SDK on its published port) for the module's tests."""
    app = module_appliances(network=module_network, ports=("8080/tcp", "30650/tcp")).wait_healthy()
    # Writes after this marker come from the tests' inputs, not from the start-up (gunicorn's
    # compiled config, Label Studio's user id under /root/.config).
    assert app.exec("touch", START_MARKER)[0] == 0
    client = sdk_client(app.pachd_address)
    put_files(client, "plain", {"tasks/a.json": json.dumps({"text": "a plain task"})})
    create_repo(client, "plainlabels")
    api = app.api()
    return Env(app, client, api, create_project(api, "hostile input"))


def mounts(app) -> list:
    rc, out = app.exec("python", "-c", "import urllib.request; print(urllib.request.urlopen("
                                       "'http://127.0.0.1:9002/mounts').read().decode())")
    assert rc == 0, out
    return sorted(m["name"] for m in json.loads(out)["mounted"])


def storages(env) -> list:
    return [s["id"] for kind in (SOURCE, TARGET) for s in env.api.call("GET", f"{kind}?project={env.project['id']}")]


# (storage, field, value, words the answer must contain)
FORM_CASES = [
    ("Source", "prefix", "../outside", "leaves its folder"),
    ("Source", "prefix", "tasks/../../outside", "leaves its folder"),
    ("Target", "prefix", "../../../../tmp/pachstudio-escape", "leaves its folder"),
    ("Source", "prefix", "tasks\\..\\..\\outside", "invalid path"),
    ("Source", "prefix", "tasks\x00", "Null characters"),
    ("Target", "prefix", "labels\x1b[31m", "control characters"),
    ("Target", "prefix", "p" * 5000, "longer than 1024"),
    ("Source", "repo", "../../etc", "not a Pachyderm name"),
    ("Source", "repo", "/etc/passwd", "not a Pachyderm name"),
    ("Source", "repo", "répo-ünïcode", "not a Pachyderm name"),
    ("Target", "repo", "r" * 100, "at most 63"),
    ("Target", "repo", "labels\x00", "Null characters"),
    ("Source", "repo", "no-such-repo", "not found"),
    ("Source", "pach_project", "../default", "not a Pachyderm name"),
    ("Target", "pach_project", "nosuchproject", "not found"),
    ("Source", "branch", "master/../../x", "not a Pachyderm name"),
    ("Target", "branch", "main; rm -rf /", "not a Pachyderm name"),
    ("Source", "commit", "../../../etc", "not a Pachyderm commit id"),
    ("Source", "regex_filter", "([", "not a valid regular expression"),
    ("Target", "file_format", "../x", "not a valid choice"),
    ("Source", "title", "t" * 5000, "no more than"),
]


def _reason(r, limit=240) -> str:
    """What a 400 says, without Label Studio's envelope (request id, version)."""
    try:
        errors = r.json().get("validation_errors") or r.json()
        text = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in errors.items())
    except (ValueError, AttributeError):
        text = r.text
    return text if len(text) < limit else text[:limit] + "..."


def _shown(value: str) -> str:
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value[:40])
    return text + (f"... ({len(value)} characters)" if len(value) > 40 else "")


@pytest.mark.reliability("Hostile input", "{storage} form, {field} = {shown}")
@pytest.mark.parametrize("storage, field, value, reason, shown",
                         [(*c, _shown(c[2])) for c in FORM_CASES],
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(FORM_CASES)])
def test_storage_form_refuses_bad_values(env, outcome, storage, field, value, reason, shown):
    """A bad field is a 400 naming the field and why; no storage is saved and nothing is mounted."""
    before_storages, before_mounts = storages(env), mounts(env.app)
    body = ({"project": env.project["id"], "title": "bad", "repo": "plain", "prefix": "tasks"} if storage == "Source"
            else {"project": env.project["id"], "title": "bad", "repo": "plainlabels", "prefix": "labels",
                  "file_format": "annotation"})
    body[field] = value
    r = env.api.http.post(env.api.url + (SOURCE if storage == "Source" else TARGET), json=body, timeout=120)
    outcome(f"{r.status_code}: {_reason(r)}")
    assert r.status_code == 400, r.text
    assert reason in r.text
    assert field in r.text or field.replace("_", " ") in r.text or field == "pach_project" and "project" in r.text
    assert storages(env) == before_storages and mounts(env.app) == before_mounts
    outcome("no storage saved, nothing mounted")


@pytest.mark.reliability("Hostile input", "Target prefix given as an absolute path (/abs/labels)")
def test_absolute_prefix_is_a_folder_of_the_repo(env, outcome):
    """A leading `/` means the repo root (as Pachyderm writes paths): labels go to the repo's
    /abs/labels/, never to the container's /abs."""
    source = add_source(env.api, env.project["id"], "plain", prefix="tasks")
    sync_source(env.api, source["id"])
    target = add_target(env.api, env.project["id"], "plainlabels", prefix="/abs/labels")
    assert target["prefix"] == "abs/labels"
    task = env.api.call("GET", f"/api/tasks/?project={env.project['id']}")["tasks"][0]
    annotation = env.api.call("POST", f"/api/tasks/{task['id']}/annotations/", json={"result": choice_result("cat")})
    sync_target(env.api, target["id"])
    files = files_at(env.client, "plainlabels@master:/")
    outcome(f"stored prefix 'abs/labels'; after Sync the repo holds {sorted(files)}")
    assert files == {f"/abs/labels/{annotation['id']}.json"}
    rc, _ = env.app.exec("test", "-e", "/abs")
    assert rc != 0, "nothing was written to the container's /abs"
    outcome("no /abs in the container")


# Names a user may find in a repo; the content of each file is JSON naming it.
NAMES = {
    "unicode": "names/猫 café ünïcode.json",
    "URL characters": "names/space #hash ?query &amp %25 +plus.json",
    "control characters": "names/ctrl \x01\x1b\x7f.json",
    "newline": "names/new\nline.json",
    "255-byte name": "names/" + "n" * 250 + ".json",
    "deep path (1,000 characters)": "names/" + "d/" * 495 + "deep.json",
    "leading dot": "names/.hidden.json",
    ".. segments": "names/../../escape-attempt.json",
    "300-byte name": "names/" + "m" * 295 + ".json",
}


@pytest.fixture(scope="module")
def hostile_repo(env):
    """The repo `hostile` holding NAMES, each put in its own commit; {label: path as stored}."""
    create_repo(env.client, "hostile")
    stored, refused = {}, {}
    for label, path in NAMES.items():
        try:
            put_files(env.client, "hostile", {path: json.dumps({"text": label})}, create=False)
        except Exception as exc:  # noqa: BLE001 - what the cluster refuses is reported, not imported
            refused[label] = str(exc).splitlines()[0][:120]
    for f in env.client.pfs.walk_file(file=pfs.File.from_uri("hostile@master:/")):
        if f.file_type == pfs.FileType.FILE:
            label = read_json(env.client, "hostile@master", f.file.path)["text"]
            stored[label] = f.file.path.lstrip("/")
    return stored, refused


@pytest.mark.reliability("Hostile input", "repo files with unicode, URL characters, control characters, a newline, "
                                          "255- and 300-byte names, a 1,000-character path, `..` segments: "
                                          "imported as file tasks and as JSON tasks, served by data URLs")
def test_hostile_file_names_in_a_repo(env, hostile_repo, outcome):
    stored, refused = hostile_repo
    outcome(f"cluster refused: {refused or 'none'}; `..` stored as /{stored.get('.. segments')}")
    assert stored.get(".. segments") == "escape-attempt.json", "the cluster cleans `..` to the repo root"
    under = {label: path for label, path in stored.items() if path.startswith("names/")}
    project = create_project(env.api, "hostile names", BLOB_CONFIG)
    blob = add_source(env.api, project["id"], "hostile", prefix="names", use_blob_urls=True)
    done = sync_source(env.api, blob["id"], expect=("completed", "completed_with_errors"))
    tasks = env.api.call("GET", f"/api/tasks/?project={project['id']}&page_size=100")["tasks"]
    by_path = {t["data"]["pachyderm_path"]: t for t in tasks}
    outcome(f"file-task Source: {len(tasks)} tasks for {len(under)} files ({done['status']})")
    assert set(by_path) == set(under.values())
    served = {}
    for label, path in under.items():
        r = env.api.http.get(env.app.url + by_path[path]["data"]["url"], timeout=120)
        served[label] = r.status_code
        if r.status_code == 200:
            assert json.loads(r.content) == {"text": label}, label
        else:
            assert r.status_code < 500 or r.status_code == 503, (label, r.status_code, r.text[:300])
            assert "Traceback" not in r.text and r.text.strip(), (label, r.text[:300])
            served[label] = f"{r.status_code} ({r.text.strip()[:80]})"
    outcome("data URLs: " + ", ".join(f"{k} {v}" for k, v in served.items()))
    assert all(v == 200 for k, v in served.items() if k != "300-byte name"), served
    json_project = create_project(env.api, "hostile names json")
    as_json = add_source(env.api, json_project["id"], "hostile", prefix="names")
    done = sync_source(env.api, as_json["id"], expect=("completed", "completed_with_errors"))
    texts = {t["data"]["text"] for t in env.api.call("GET", f"/api/tasks/?project={json_project['id']}"
                                                            "&page_size=100")["tasks"]}
    skipped = (done.get("traceback") or "").strip()
    outcome(f"JSON Source: {len(texts)} tasks" + (f", skipped: {skipped[:200]}" if skipped else ""))
    assert texts | ({"300-byte name"} if "300-byte name" in under else set()) == set(under)


@pytest.mark.reliability("Hostile input", "data URL ?path= with `..`, an absolute path, NUL, encoded slashes, "
                                          "backslashes, 5,000 characters, a missing file, no path, another "
                                          "storage's id")
def test_data_url_paths_stay_in_the_mount(env, hostile_repo, outcome):
    project = create_project(env.api, "data url paths", BLOB_CONFIG)
    blob = add_source(env.api, project["id"], "plain", prefix="tasks", use_blob_urls=True)
    sync_source(env.api, blob["id"])
    base = f"{env.app.url}/data/pachyderm/{blob['id']}/"
    tries = {
        "..": "?path=../../../../etc/passwd",
        "absolute": "?path=/etc/passwd",
        "NUL": "?path=tasks/a.json%00.png",
        "encoded slashes": "?path=tasks%2f..%2f..%2f..%2fetc%2fpasswd",
        "backslashes": "?path=tasks\\..\\..\\etc\\passwd",
        "5,000 characters": "?path=" + "x" * 5000,
        "missing file": "?path=tasks/nope.json",
        "no path": "",
        "mount name": "?path=../ls_rw_plainlabels_master/abs",
    }
    got = {}
    for label, query in tries.items():
        r = env.api.http.get(base + query, timeout=60)
        got[label] = r
        assert b"root:" not in r.content and "Traceback" not in r.text, label
    r = env.api.http.get(f"{env.app.url}/data/pachyderm/999999/?path=tasks/a.json", timeout=60)
    got["unknown storage id"] = r
    outcome(", ".join(f"{k}: {v.status_code}" for k, v in got.items()))
    for label in ("..", "absolute", "NUL", "encoded slashes", "backslashes", "no path", "mount name"):
        assert got[label].status_code == 400, (label, got[label].status_code, got[label].text[:200])
    assert got["5,000 characters"].status_code in (400, 404, 414)
    assert got["missing file"].status_code == 404 and got["unknown storage id"].status_code == 404
    good = env.api.http.get(base + "?path=tasks/a.json", timeout=60)
    assert good.status_code == 200 and json.loads(good.content) == {"text": "a plain task"}


def _peak_rss_mb(app, needle="gunicorn") -> int:
    """The highest peak resident memory (VmHWM) among the container's processes named `needle`."""
    script = ("import os\nbest = 0\nfor p in os.listdir('/proc'):\n    try:\n"
              f"        if p.isdigit() and b'{needle}' in open(f'/proc/{{p}}/cmdline', 'rb').read():\n"
              "            for line in open(f'/proc/{p}/status'):\n"
              "                if line.startswith('VmHWM:'): best = max(best, int(line.split()[1]))\n"
              "    except OSError: pass\nprint(best // 1024)")
    rc, out = app.exec("python", "-c", script)
    assert rc == 0, out
    return int(out.strip())


@pytest.mark.reliability("Hostile input", "a 2 GiB file: as one file task, and in JSON-tasks mode")
def test_two_gib_file(env, outcome, tmp_path):
    """Streamed in, it becomes one task without Label Studio reading it; a JSON-mode Source skips it
    with the size in the reason instead of parsing 2 GiB in a worker."""
    size = 2 << 30
    big = tmp_path / "huge.json"
    with open(big, "wb") as f:  # sparse on disk: 2 GiB read as zeros, nothing held in memory
        f.write(b"[")
        f.truncate(size)
    create_repo(env.client, "big")
    started = time.monotonic()
    with env.client.pfs.commit(branch=pfs.Branch.from_uri("big@master")) as commit, open(big, "rb") as f:
        commit.put_file_from_file(path="/big/huge.json", file=f)
    put_seconds = time.monotonic() - started
    info = env.client.pfs.inspect_file(file=pfs.File.from_uri("big@master:/big/huge.json"))
    assert info.size_bytes == size
    before = _peak_rss_mb(env.app)
    project = create_project(env.api, "two gib", BLOB_CONFIG)
    blob = add_source(env.api, project["id"], "big", prefix="big", use_blob_urls=True)
    started = time.monotonic()
    sync_source(env.api, blob["id"])
    sync_seconds = time.monotonic() - started
    tasks = env.api.call("GET", f"/api/tasks/?project={project['id']}")["tasks"]
    assert len(tasks) == 1
    started = time.monotonic()
    head = env.api.http.get(env.app.url + tasks[0]["data"]["url"], headers={"Range": "bytes=0-99"}, timeout=600)
    range_seconds = time.monotonic() - started
    assert head.status_code == 206 and head.content == b"[" + b"\0" * 99
    tail = env.api.http.get(env.app.url + tasks[0]["data"]["url"], headers={"Range": f"bytes={size - 10}-"},
                            timeout=600)
    assert tail.status_code == 206 and tail.content == b"\0" * 10
    whole = env.api.http.head(env.app.url + tasks[0]["data"]["url"], timeout=600)
    assert whole.status_code == 200 and whole.headers["Content-Length"] == str(size)
    after_blob = _peak_rss_mb(env.app)
    outcome(f"put through the SDK in {put_seconds:.0f} s; file-task Source: 1 task in {sync_seconds:.1f} s; "
            f"first 100 bytes by a range request in {range_seconds:.1f} s; Label Studio peak memory "
            f"{before} MB before, {after_blob} MB after")
    assert after_blob < 1024, "Label Studio must not hold the file"
    json_project = create_project(env.api, "two gib json")
    as_json = add_source(env.api, json_project["id"], "big", prefix="big")
    done = sync_source(env.api, as_json["id"], expect=("completed_with_errors",))
    outcome(f"JSON Source: {task_count(env.api, json_project['id'])} tasks, {done['status']}: "
            f"{done['traceback'].strip()}")
    assert task_count(env.api, json_project["id"]) == 0
    assert "2,048 MB" in done["traceback"] and "skipped" in done["traceback"]
    assert _peak_rss_mb(env.app) < 1024


@pytest.mark.reliability("Hostile input", "an empty file, a binary file, plain text, a JSON number list and a "
                                          "good task in JSON-tasks mode and as file tasks")
def test_empty_and_non_json_files(env, outcome):
    """Bad files are skipped with their reason; the good one is imported; nothing is lost."""
    files = {"odd/empty.json": b"", "odd/binary.json": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
             "odd/text.json": b"hello, not json", "odd/numbers.json": b"[1, 2, 3]",
             "odd/good.json": json.dumps({"text": "good"}).encode()}
    put_files(env.client, "odd", files)
    project = create_project(env.api, "odd json")
    source = add_source(env.api, project["id"], "odd", prefix="odd")
    done = sync_source(env.api, source["id"], expect=("completed_with_errors",))
    tasks = env.api.call("GET", f"/api/tasks/?project={project['id']}")["tasks"]
    reasons = done["traceback"].strip().splitlines()
    outcome(f"JSON Source: {len(tasks)} task ({tasks[0]['data']['text'] if tasks else '-'}); skipped: "
            + " | ".join(reasons))
    assert [t["data"]["text"] for t in tasks] == ["good"]
    for name, words in (("empty.json", "is empty"), ("binary.json", "not a JSON file"),
                        ("text.json", "not a JSON file"), ("numbers.json", "neither a task")):
        assert any(name in line and words in line for line in reasons), (name, reasons)
    blob_project = create_project(env.api, "odd files", BLOB_CONFIG)
    blob = add_source(env.api, blob_project["id"], "odd", prefix="odd", use_blob_urls=True)
    sync_source(env.api, blob["id"])
    tasks = env.api.call("GET", f"/api/tasks/?project={blob_project['id']}")["tasks"]
    got = {t["data"]["pachyderm_path"]: env.api.http.get(env.app.url + t["data"]["url"], timeout=60) for t in tasks}
    outcome(f"file-task Source: {len(tasks)} tasks, every data URL "
            + ("200 with the file's bytes" if all(r.status_code == 200 for r in got.values()) else "NOT 200"))
    assert {p: (r.status_code, r.content) for p, r in got.items()} == {p: (200, b) for p, b in files.items()}


@pytest.mark.reliability("Hostile input", "a JSON file of 100,000 tasks, synced twice")
def test_json_file_with_100000_tasks(env, outcome):
    tasks = [{"text": f"task {i}"} for i in range(100_000)]
    put_files(env.client, "many", {"many/tasks.json": json.dumps(tasks)})
    project = create_project(env.api, "many tasks")
    source = add_source(env.api, project["id"], "many", prefix="many")
    started = time.monotonic()
    done = sync_source(env.api, source["id"], timeout=900)
    seconds = time.monotonic() - started
    count = task_count(env.api, project["id"])
    outcome(f"{count:,} tasks in {seconds:.0f} s ({count / seconds:,.0f} tasks/s)")
    assert count == 100_000 and done["last_sync_count"] == 100_000
    page = env.api.call("GET", f"/api/tasks/?project={project['id']}&page_size=1&page=100000")["tasks"]
    assert page and page[0]["data"]["text"].startswith("task ")
    again = sync_source(env.api, source["id"])
    assert task_count(env.api, project["id"]) == 100_000
    outcome(f"a second sync added {again['last_sync_count']} (still {task_count(env.api, project['id']):,})")


# --- the cluster config ----------------------------------------------------------------------------
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _ctx(**fields):
    return {"v2": {"active_context": "lab", "contexts": {"lab": {"session_token": CANARY, **fields}}}}


# id -> (content of config.json, "exit" or "start", words the log must hold)
CONFIGS = {
    "not JSON": ('{"v2": {"active_context": "lab", "contexts": {', "exit", "not valid JSON"),
    "binary garbage": ("\x00\x01\x02 config", "exit", "not valid JSON"),
    "top level is a list": ("[1, 2]", "exit", "top level must be a JSON object"),
    "contexts but no active context": ({"v2": {"contexts": {"lab": {"session_token": CANARY}}}}, "exit",
                                       "no active context"),
    "active context missing": ({"v2": {"active_context": "gone", "contexts": {"lab": {}}}}, "exit",
                               "'gone' (v2.active_context) is not among v2.contexts"),
    "context is a string": ({"v2": {"active_context": "lab", "contexts": {"lab": "grpc://x:1"}}}, "exit",
                            "must be an object"),
    "server_cas not base64": (_ctx(pachd_address="grpcs://pachd:30650", server_cas="%%% not base64"), "exit",
                              "server_cas is not base64"),
    "server_cas base64 of no certificate": (_ctx(pachd_address="grpcs://pachd:30650",
                                                 server_cas=base64.b64encode(b"hello").decode()), "exit",
                                            "holds no PEM certificate"),
    "pachd_address with an ftp:// scheme": (_ctx(pachd_address="ftp://pachd:30650"), "exit", "has scheme 'ftp'"),
    "session_token is a number": ({"v2": {"active_context": "lab", "contexts": {"lab": {"session_token": 12345}}}},
                                  "exit", "session_token must be a string"),
    "empty file": ("", "start", "no Pachyderm cluster configured"),
    "unknown keys at every level": (None, "start", "using the Pachyderm cluster at"),
}


@pytest.mark.reliability("Hostile input", "malformed config.json: {content_id}")
@pytest.mark.parametrize("content_id", list(CONFIGS))
def test_config_json_variants(env, module_appliances, module_network, outcome, content_id):
    """A config that cannot be used stops the start with the file and the problem (never the
    token); one that can (unknown keys are ignored, as pachctl does) starts the appliance."""
    content, verdict, words = CONFIGS[content_id]
    if content is None:
        content = {"future": 1, "v2": {"active_context": "lab", "metrics": True, "contexts": {"lab": {
            "pachd_address": f"grpc://{env.app.name}:30650", "session_token": CANARY, "cluster_name": "x",
            "enterprise_server": True, "port_forwarders": {"pachd": 1}, "some_new_key": {"a": [1]}}}}}
    app = module_appliances(config_json=content, network=module_network, ports=("8080/tcp",))
    if verdict == "exit":
        code = app.wait_exit()
        logs = app.logs()
        line = next((ln.strip() for ln in logs.splitlines() if "config.json" in ln), "")
        outcome(f"exit {code}: {line[:220]}")
        assert code == 1, logs[-2000:]
        assert "/root/.pachyderm/config.json" in logs and words in logs, logs[-2000:]
        assert "Traceback" not in logs
    else:
        app.wait_healthy()
        logs = app.logs()
        line = next(ln.strip() for ln in logs.splitlines() if words in ln)
        outcome(f"healthy: {line}")
        rc, out = app.exec("python", "-c", "import urllib.request; print(urllib.request.urlopen("
                                           "'http://127.0.0.1:9002/config').read().decode())")
        status = json.loads(out)["cluster_status"]
        outcome(f"cluster status {status}")
        assert status == "AUTH_DISABLED"
        app.stop(timeout=20)
        logs = app.logs()
    assert CANARY not in logs


@pytest.mark.reliability("Hostile input", "a wrong session token (a cluster with auth that refuses it: the "
                                          "image's own `pfs-server` with a root token)")
def test_wrong_token_says_so(module_appliances, module_network, outcome):
    cluster = module_appliances(command=["pfs-server"], env={"PACHSTUDIO_ROOT_TOKEN": "root-of-the-test-cluster"},
                                network=module_network, fuse=False, ports=())
    deadline = time.monotonic() + 60
    while "auth is on" not in cluster.logs():
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.5)
    app = module_appliances(network=module_network, ports=("8080/tcp",), config_json=_ctx(
        pachd_address=f"grpc://{cluster.name}:30650")).wait_healthy()
    api = app.api()
    project = create_project(api, "wrong token")
    r = api.http.post(api.url + SOURCE, json={"project": project["id"], "title": "x", "repo": "images"}, timeout=120)
    outcome(f"Source form: {r.status_code}: {_reason(r, 600)}")
    assert r.status_code == 400
    message = r.text.lower()
    assert "token" in message and "refused" in message and "pachctl auth login" in message, r.text
    assert CANARY not in r.text and CANARY not in app.logs()


# Where the appliance may write while it serves: the staging folder and the FUSE mount, Label
# Studio's data, the embedded server's data, and the run-time files of its programs.
ALLOWED = ("/data/mount/", "/data/label-studio/", "/data/pfs/", "/run/pachstudio/", "/dev/shm/")


@pytest.mark.reliability("Hostile input", "after every hostile input above: files written outside /pfs, the staging "
                                          "folder and the appliance's own data")
def test_nothing_written_outside_the_allowed_folders(env, outcome):
    """Runs last in this module: every file changed since the tests began, on the image's
    filesystem and on /data, must be under ALLOWED; no file anywhere carries an escape name."""
    rc, out = env.app.exec("sh", "-c", f"find / /data -xdev -newer {START_MARKER} -type f 2>/dev/null; "
                                       f"find / /data -xdev \\( -name '*pachstudio-escape*' "
                                       f"-o -name '*escape-attempt*' "
                                       f"-o -name 'passwd*' -newer {START_MARKER} \\) -print 2>/dev/null")
    changed = sorted(set(out.split("\n")) - {""})
    outside = [p for p in changed if not p.startswith(ALLOWED)]
    outcome(f"{len(changed)} files written since start, {len(outside)} outside the allowed folders"
            + (f": {outside[:10]}" if outside else ""))
    assert not outside
    assert any(p.startswith("/data/mount/") for p in changed), "the search sees the staging folder's writes"
