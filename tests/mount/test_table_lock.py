"""The table-wide lock is held for no cluster call: while one mount waits on a slow cluster, the
other calls answer (issue "team deployment", item 8). In-process, against a stub cluster."""
import threading
import time
from datetime import datetime, timezone

from fastapi.testclient import TestClient
from pachyderm_sdk.api import pfs

from pachstudio.mount.api import build_app
from pachstudio.mount.cache import ContentCache
from pachstudio.mount.table import MountTable


class SlowCluster:
    """Every repo exists with one finished commit; inspecting repo `slow` waits for `release`."""
    address, project, calls = "grpc://stub:30650", "default", {}

    def __init__(self):
        self.release = threading.Event()
        self.waiting = threading.Event()

    def status(self):
        return "AUTH_DISABLED"

    def inspect_repo(self, repo):
        if repo.name == "slow":
            self.waiting.set()
            assert self.release.wait(30)
        return pfs.RepoInfo(repo=repo)

    def inspect_branch(self, branch):
        return pfs.BranchInfo(branch=branch, head=pfs.Commit(id="c" * 32, repo=branch.repo))

    def inspect_commit(self, commit, wait=False):
        return pfs.CommitInfo(commit=commit, finished=datetime.now(timezone.utc))

    def list_commits(self, repo, to, since):
        return []


def test_a_slow_mount_blocks_no_other_call(tmp_path):
    cluster = SlowCluster()
    mount_dir = tmp_path / "pfs"
    mount_dir.mkdir()
    table = MountTable(cluster, str(tmp_path / "state"), str(mount_dir),
                       ContentCache(str(tmp_path / "cache"), 1 << 20))
    client = TestClient(build_app(table, reconfigure=None))
    slow = threading.Thread(target=client.put, args=("/_mount",),
                            kwargs={"json": {"mounts": [{"name": "s", "repo": "slow"}]}})
    slow.start()
    try:
        assert cluster.waiting.wait(10)
        for method, path, body in [("GET", "/health", None), ("GET", "/mounts", None),
                                   ("PUT", "/_mount", {"mounts": [{"name": "f", "repo": "fast"}]}),
                                   ("GET", "/mounts", None)]:
            started = time.monotonic()
            r = client.request(method, path, json=body)
            assert r.status_code == 200, r.text
            assert time.monotonic() - started < 1, (path, time.monotonic() - started)
        assert [m["name"] for m in r.json()["mounted"]] == ["f"]
    finally:
        cluster.release.set()
        slow.join(30)
    assert sorted(m["name"] for m in client.get("/mounts").json()["mounted"]) == ["f", "s"]
