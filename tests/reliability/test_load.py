"""Load: API clients save annotations (creates, updates, deletes) while Target Syncs run in a loop.
After a final Sync every live annotation is in Pachyderm exactly once, with its last content, and
no deleted one is left. CI's run saves 400 (tens of Syncs overlap the saves, and each client
updates and deletes what earlier Syncs sent); the report run (PACHSTUDIO_RELIABILITY_HEAVY=1) and
scripts/bench-load save 2,000.

Run on both databases in one session, with the same clients: 8 clients on SQLite, then on
PostgreSQL (its row also gives the ratio to SQLite's figures of the same run), then 32 clients on
PostgreSQL (`heavy`: only with PACHSTUDIO_RELIABILITY_HEAVY=1, as the report run sets). The
figures are printed and recorded in the Reliability table; only correctness is asserted (no 500,
nothing lost, each label once), never a timing."""
import os
import random
import threading
import time

import pytest
import requests

from plugins.image import TOKEN, sdk_client

from .appliance_steps import TARGET, add_target, commits, create_project, create_repo, read_json, wait_storage
from .conftest import HEAVY
from .databases import appliance_env, remove, start_postgres

CLIENTS, TASKS = 8, 250
SAVES = 2000 if os.environ.get(HEAVY) == "1" else 400
MANY_CLIENTS = 32
GOAL_RATIO, GOAL_P95 = 3.0, 0.5  # PostgreSQL at 8 clients: saves/s against SQLite's, seconds per save
_figures: dict = {}  # (database, clients) -> {"rate": saves/s, "p95": s}, for the comparison


def result(worker: int, n: int, choice: str) -> list:
    # The region id makes every saved content unique, so "its last content" can be checked exactly.
    return [{"id": f"w{worker}s{n}", "from_name": "label", "to_name": "text", "type": "choices",
             "value": {"choices": [choice]}}]


class Client:
    """One annotator: an HTTP session of its own, its own tasks, its own annotations."""

    def __init__(self, url, worker, task_ids):
        self.url, self.worker, self.task_ids = url, worker, task_ids
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {TOKEN}"
        self.rng = random.Random(worker)
        self.live = {}  # annotation id -> last result saved
        self.deleted = set()
        self.errors = []
        self.saves = 0
        self.seconds = []  # time of each successful save

    def request(self, method, path, **kwargs):
        for attempt in range(3):
            started = time.monotonic()
            r = self.http.request(method, self.url + path, timeout=300, **kwargs)
            self.last = time.monotonic() - started
            if r.status_code < 500:
                break
            self.errors.append(f"{method} {path} -> {r.status_code} (attempt {attempt + 1}): {r.text[:200]}")
        return r

    def run(self, count):
        for n in range(count):
            roll = self.rng.random()
            choice = self.rng.choice(["cat", "dog"])
            if not self.live or roll < 0.4:
                task = self.rng.choice(self.task_ids)
                r = self.request("POST", f"/api/tasks/{task}/annotations/",
                                 json={"result": result(self.worker, n, choice)})
                if r.status_code == 201:
                    self.live[r.json()["id"]] = result(self.worker, n, choice)
            elif roll < 0.9:
                ann = self.rng.choice(sorted(self.live))
                r = self.request("PATCH", f"/api/annotations/{ann}/", json={"result": result(self.worker, n, choice)})
                if r.status_code == 200:
                    self.live[ann] = result(self.worker, n, choice)
            else:
                ann = self.rng.choice(sorted(self.live))
                r = self.request("DELETE", f"/api/annotations/{ann}/")
                if r.status_code == 204:
                    del self.live[ann]
                    self.deleted.add(ann)
            if r.status_code >= 300:
                self.errors.append(f"save {n}: {r.status_code} {r.text[:200]}")
            else:
                self.saves += 1
                self.seconds.append(self.last)


@pytest.fixture(scope="module")
def appliance_on(module_appliances, module_network, docker_client):
    """`appliance_on(database)`: the module's appliance on that database; asking for the other
    database removes the running one first (the two never compete for the machine's cores)."""
    current = {}

    def drop():
        if current.get("app") is not None:
            current["app"].remove()
        if current.get("pg") is not None:
            remove(current["pg"])
        current.clear()

    def on(database):
        if current.get("database") != database:
            drop()
            kwargs = {}
            if database == "postgresql":
                current["pg"] = start_postgres(docker_client, module_network)
                kwargs = {"network": module_network, "env": appliance_env(current["pg"])}
            # A first start on PostgreSQL migrates an empty database (minutes on a busy machine).
            current["app"] = module_appliances(ports=("8080/tcp", "30650/tcp"), **kwargs).wait_healthy(timeout=900)
            current["database"] = database
        return current["app"]

    yield on
    drop()


@pytest.mark.reliability("Load", f"{CLIENTS} API clients save {SAVES:,} annotations (create, update, delete) on "
                                 f"{TASKS} tasks while a Target Sync runs about every second, then a final Sync")
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
@pytest.mark.timeout(1800)  # 2,000 saves on SQLite took 4 min on an idle 2-core machine, 10 on a busy one
def test_concurrent_saves_during_target_syncs(appliance_on, database, outcome):
    figures = run_load(appliance_on(database), outcome, CLIENTS, f"load{CLIENTS}")
    _figures[(database, CLIENTS)] = figures
    base = _figures.get(("sqlite", CLIENTS))
    if database == "postgresql":
        if base:
            ratio = figures["rate"] / base["rate"]
            met_ratio, met_p95 = ratio >= GOAL_RATIO, figures["p95"] <= GOAL_P95
            verdict = (f"PostgreSQL vs SQLite in this run: {ratio:.1f}x the saves/s (goal >= {GOAL_RATIO:.0f}x: "
                       f"{'met' if met_ratio else 'NOT met'}), 95th percentile {figures['p95']:.2f} s vs "
                       f"{base['p95']:.2f} s (goal <= {GOAL_P95} s: {'met' if met_p95 else 'NOT met'})")
        else:
            verdict = "no SQLite run in this session to compare with"
        print(f"\n{verdict}")
        outcome(verdict)


@pytest.mark.reliability("Load", f"{MANY_CLIENTS} API clients save {SAVES:,} annotations on {TASKS} tasks while a "
                                 "Target Sync runs about every second, then a final Sync")
@pytest.mark.parametrize("database", ["postgresql"])
@pytest.mark.timeout(1800)
@pytest.mark.heavy  # CI's default run stays within its time budget; the README's report run includes it
def test_many_clients_on_postgresql(appliance_on, database, outcome):
    _figures[(database, MANY_CLIENTS)] = run_load(appliance_on(database), outcome, MANY_CLIENTS, f"load{MANY_CLIENTS}")


def run_load(app, outcome, clients_count: int, repo: str) -> dict:
    """`clients_count` clients save SAVES annotations on a new project whose Target is `repo`, with a
    Sync about every second; then checks every label in Pachyderm. Returns the figures."""
    client = sdk_client(app.pachd_address)
    create_repo(client, repo)
    api = app.api()
    project = create_project(api, repo)
    api.call("POST", f"/api/projects/{project['id']}/import",
             json=[{"text": f"load task {i}"} for i in range(TASKS)])
    task_ids = [t["id"] for t in api.call("GET", f"/api/tasks/?project={project['id']}&page_size=1000")["tasks"]]
    assert len(task_ids) == TASKS
    target = add_target(api, project["id"], repo)
    wait_storage(api, f"{TARGET}/{target['id']}")

    clients = [Client(app.url, w, task_ids[w::clients_count]) for w in range(clients_count)]
    threads = [threading.Thread(target=c.run, args=(SAVES // clients_count,)) for c in clients]
    stop = threading.Event()
    syncs = {"done": 0, "failed": []}

    def sync_loop():
        while not stop.is_set():
            api.call("POST", f"{TARGET}/{target['id']}/sync")
            storage = wait_storage(api, f"{TARGET}/{target['id']}", timeout=600, expect=("completed", "failed"))
            syncs["done"] += 1
            if storage["status"] == "failed":
                syncs["failed"].append((storage.get("traceback") or "").splitlines()[0][:200])
            stop.wait(1.0)  # a user presses Sync again about every second

    syncer = threading.Thread(target=sync_loop)
    started = time.monotonic()
    for t in threads:
        t.start()
    syncer.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    stop.set()
    syncer.join()
    saves = sum(c.saves for c in clients)
    during = len(commits(client, repo))
    final = wait_storage(api, f"{TARGET}/{target['id']}")  # the loop's last Sync has ended
    api.call("POST", f"{TARGET}/{target['id']}/sync")
    final = wait_storage(api, f"{TARGET}/{target['id']}", timeout=600)
    errors = [e for c in clients for e in c.errors]
    latency = sorted(t for c in clients for t in c.seconds)
    p50, p95 = latency[len(latency) // 2], latency[int(len(latency) * 0.95)]
    figures = {"rate": saves / seconds, "p95": p95}
    print(f"\n{clients_count} clients: {saves / seconds:.1f} saves/s, p50 {p50:.2f} s, p95 {p95:.2f} s")
    outcome(f"{saves:,} saves in {seconds:.0f} s ({saves / seconds:.1f} saves/s, {p50:.2f} s median and {p95:.2f} s "
            f"95th percentile per save) by {clients_count} clients; "
            f"{syncs['done']} Target Syncs during the saves ({len(syncs['failed'])} failed), {during} commits; "
            f"final Sync: commit {(final.get('last_commit') or '')[:8]}")
    assert not errors, errors[:10]
    assert not syncs["failed"], syncs["failed"]
    assert saves == SAVES - SAVES % clients_count

    live = {ann: res for c in clients for ann, res in c.live.items()}
    deleted = set().union(*(c.deleted for c in clients))
    paths = {p for p in _files(client, f"{repo}@master:/annotations/")}
    in_repo = {int(p.rsplit("/", 1)[1][: -len(".json")]) for p in paths}
    wrong, misnamed = [], []
    for ann, expected in live.items():
        if ann in in_repo:
            content = read_json(client, f"{repo}@master", f"/annotations/{ann}.json")
            if content.get("id") != ann:
                misnamed.append(ann)
            if content.get("result") != expected:
                wrong.append((ann, content.get("result"), expected))
    missing = set(live) - in_repo
    stale = in_repo & deleted
    unknown = in_repo - set(live) - deleted
    outcome(f"{len(live):,} live annotations, {len(deleted)} deleted; in Pachyderm: {len(paths):,} files, "
            f"{len(missing)} missing, {len(wrong)} with old content, {len(stale)} deleted ones left, "
            f"{len(unknown)} unknown")
    assert not missing and not wrong and not stale and not unknown and not misnamed, \
        (sorted(missing)[:10], wrong[:3], sorted(stale)[:10], sorted(unknown)[:10], misnamed[:10])
    assert len(paths) == len(live)
    total = api.call("GET", f"/api/projects/{project['id']}/")["total_annotations_number"]
    assert total == len(live), "Label Studio and the clients agree on what is live"
    # Nothing left staged: one more Sync makes no commit.
    count = len(commits(client, repo))
    api.call("POST", f"{TARGET}/{target['id']}/sync")
    wait_storage(api, f"{TARGET}/{target['id']}")
    assert len(commits(client, repo)) == count
    outcome("a further Sync made no commit")
    return figures


def _files(client, uri):
    from pachyderm_sdk.api import pfs

    return [f.file.path for f in client.pfs.walk_file(file=pfs.File.from_uri(uri))
            if f.file_type == pfs.FileType.FILE]
