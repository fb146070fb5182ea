"""The API layer in-process, against a stub cluster: the table-wide lock is held for no cluster
call (while one mount waits on a slow cluster, the other calls answer: issue "team deployment",
item 8), and /openapi.json describes the answers."""
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

    def needs_login(self):
        return False

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

    def repos(self):
        return [pfs.RepoInfo(repo=pfs.Repo(name=n, type="user", project=pfs.Project(name="default")))
                for n in ("fast", "other", "slow")]


def _client(tmp_path, cluster) -> TestClient:
    mount_dir = tmp_path / "pfs"
    mount_dir.mkdir()
    (tmp_path / "state").mkdir()
    table = MountTable(cluster, str(tmp_path / "state"), str(mount_dir),
                       ContentCache(str(tmp_path / "cache"), 1 << 20))
    return TestClient(build_app(table, reconfigure=None))


def test_a_slow_mount_blocks_no_other_call(tmp_path):
    cluster = SlowCluster()
    client = _client(tmp_path, cluster)
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
    assert sorted(r["repo"] for r in client.get("/mounts").json()["unmounted"]) == ["fast", "other", "slow"]


def test_openapi_describes_the_answers(tmp_path):
    spec = _client(tmp_path, SlowCluster()).get("/openapi.json").json()

    def answer(method, path):
        schema = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]
        return schema["schema"]
    assert answer("get", "/mounts") == {"$ref": "#/components/schemas/Mounts"}
    for path in ("/_mount", "/_unmount", "/_unmount_all"):
        assert answer("put", path) == {"$ref": "#/components/schemas/Mounts"}
    assert answer("put", "/_commit") == {"$ref": "#/components/schemas/CommitAnswer"}
    assert answer("put", "/_refresh") == {"$ref": "#/components/schemas/MountState"}
    for name in ("Config", "ProjectAnswer", "RepoAnswer", "StagedAnswer", "Stats"):
        assert name in spec["components"]["schemas"]
    state = spec["components"]["schemas"]["MountState"]["properties"]
    assert {"name", "latest_commit", "how_many_commits_behind"} <= set(state)


def test_bodies_without_a_content_type_are_json(tmp_path):
    """pachctl's client sends its JSON bodies with no Content-Type."""
    client = _client(tmp_path, SlowCluster())
    r = client.put("/_mount", content=b'{"mounts": [{"name": "f", "repo": "fast"}]}')
    assert r.status_code == 200, r.text
    r = client.put("/_unmount", content=b'{"mounts": ["f"]}', headers={"content-type": "text/plain"})
    assert r.status_code == 200 and r.json()["mounted"] == [], r.text
    assert client.put("/_unmount_all").status_code == 200
