"""Churn: storages, repos and commits come and go, and what they held is given back.

Its own embedded server, mount server and Label Studio (so the sizes measured are this test's):
50 storages created, synced and deleted, 20 repos of 1,000 files, 100 commits, then every repo
deleted. The mounts (the mount server's /mounts, the folders the kernel's FUSE mount shows and the
kernel's mount table), `mounts.json` and the embedded server's data folder come back within 10%
of where they started.
"""

import json
import os
import time

import httpx
import pytest
from ls_helpers import TEXT_CONFIG
from pachyderm_sdk.api import pfs

from plugins.labelstudio import LabelStudio, session_mount_server
from plugins.pfs import InProcessPfsServer, put_many

REPOS, FILES, COMMITS, STORAGES = 20, 1000, 100, 50
BIG = 20 << 10  # every 50th file is stored as a blob file, the rest inline in the database


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("churn")
    pfs_server = InProcessPfsServer(root / "pfs").start()
    mount_server = session_mount_server(root / "mount", pfs_server.address)
    ls = LabelStudio(root / "ls", mount_server.api, mount_server.mount_dir).start()
    yield pfs_server, mount_server, ls
    ls.stop()
    mount_server.stop()
    pfs_server.stop()


def repo_files(tag: str) -> dict:
    files = {}
    for i in range(FILES):
        body = json.dumps({"text": f"{tag} text {i}"}).encode()
        files[f"/d{i % 20}/{i}.json" if i % 50 else f"/blobs/{i}.bin"] = (
            body if i % 50 else (tag.encode() * BIG)[:BIG] + b"%d" % i
        )
    return files


def data_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def snapshot(pfs_server, mount_server) -> dict:
    mounted = httpx.get(mount_server.api + "/mounts", timeout=60).json()
    with open(os.path.join(mount_server.state_dir, "mounts.json")) as f:
        saved = f.read()
    with open("/proc/mounts") as f:
        kernel = sorted(line.split()[1] for line in f if line.split()[1].startswith(mount_server.root))
    return {
        "mounted": sorted(m["name"] for m in mounted["mounted"]),
        "failed": mounted["failed"],
        "folders": sorted(os.listdir(mount_server.mount_dir)),
        "kernel": kernel,
        "mounts.json": sorted(m["name"] for m in json.loads(saved)),
        "mounts.json bytes": len(saved),
        "pfs bytes": data_size(pfs_server.data_dir),
    }


def test_churn_gives_everything_back(stack):
    pfs_server, mount_server, ls = stack
    pach = pfs_server.client()
    # what stays: a repo of the same size with a Source on it, so 10% has something to be 10% of
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("stays"))
    put_many(pfs_server, "stays@master", repo_files("stays"))
    project = ls.create_project(label_config=TEXT_CONFIG)
    kept_source = ls.create_source(project["id"], repo="stays", prefix="d1")
    assert ls.sync(kept_source["id"])["status"] == "completed"
    deadline = time.monotonic() + 60
    while pfs_server.store.collector.runs < 1 and time.monotonic() < deadline:  # the start's collection has run
        time.sleep(0.1)
    start = snapshot(pfs_server, mount_server)
    assert start["mounted"] and start["kernel"]
    started = time.monotonic()

    repos = [f"churn{i}" for i in range(REPOS)]
    for repo in repos:
        pach.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
        put_many(pfs_server, f"{repo}@master", repo_files(repo))
    for n in range(COMMITS):  # 5 more commits a repo: changes, adds and deletes
        repo = repos[n % REPOS]
        with pach.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as c:
            c.put_file_from_bytes(path=f"/d0/{n}.json", data=json.dumps({"text": f"changed {n}"}).encode())
            c.put_file_from_bytes(path=f"/new/{n}.json", data=json.dumps({"text": f"new {n}"}).encode())
            c.delete_file(path=f"/d{n % 20}/{(n % 20) + 20 * (1 + n // REPOS)}.json")
    phases = {"repos and commits": time.monotonic() - started}
    projects = [ls.create_project(label_config=TEXT_CONFIG) for _ in range(5)]
    storages = []
    for n in range(STORAGES):  # Sources and Targets; some share a repo, and so a mount
        repo, project_id = repos[n % REPOS], projects[n % 5]["id"]
        if n % 2:
            target = ls.create_target(project_id, repo=repo, branch=f"labels{n % 3}", prefix="labels")
            storages.append(("export/pachyderm", ls.wait_storage(target["id"], target=True)))
        else:
            source = ls.create_source(project_id, repo=repo, prefix=f"d{n % 20}")
            done = ls.sync(source["id"])
            assert done["status"] == "completed" and done["last_sync_count"] > 0, done
            storages.append(("pachyderm", done))
    phases["storages"] = time.monotonic() - started - sum(phases.values())
    grown = snapshot(pfs_server, mount_server)
    assert len(grown["mounted"]) > len(start["mounted"]) + 20 and grown["pfs bytes"] > 5 * start["pfs bytes"]

    for kind, storage in storages:
        ls.api("DELETE", f"/api/storages/{kind}/{storage['id']}", expect=204)
    for repo in repos:
        pach.pfs.delete_repo(repo=pfs.Repo.from_uri(repo))
    phases["deletes"] = time.monotonic() - started - sum(phases.values())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        end = snapshot(pfs_server, mount_server)
        if end["pfs bytes"] <= 1.1 * start["pfs bytes"]:
            break
        time.sleep(0.5)
    phases["given back"] = time.monotonic() - started - sum(phases.values())
    print(f"churn: {time.monotonic() - started:.0f} s {phases}; start {start}; grown {grown['pfs bytes']} B; end {end}")
    for key in ("mounted", "failed", "folders", "kernel", "mounts.json"):
        assert end[key] == start[key], key
    assert end["mounts.json bytes"] <= 1.1 * start["mounts.json bytes"]
    assert end["pfs bytes"] <= 1.1 * start["pfs bytes"], (start["pfs bytes"], end["pfs bytes"])
