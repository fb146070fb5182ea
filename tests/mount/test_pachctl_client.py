"""Our mount server as Pachyderm's own client sees it: `MountServerClient` of jupyterlab-pachyderm
2.8.10 (the JupyterLab extension's client of `pachctl mount-server`), unmodified, over its default
transport (HTTP on a unix socket through pycurl), against a real mount server with real FUSE on the
embedded PFS server. The bodies the extension's frontend sends are copied from its bundle, and the
tests check the answer fields that frontend reads; every effect is read back through the files
under the mount folder and through pachyderm-sdk.

scripts/setup installs the extension without its dependencies into `.venv/jupyterlab-pachyderm`;
the package's `__init__` (the Jupyter server extension, which needs jupyter-server) is not run,
only the client module and the modules it imports.
"""

import asyncio
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import types

import pytest
from pachyderm_sdk.api import pfs

from conftest import local_tree, put, tree
from plugins.mount import MountServer

CLIENT_DIR = os.path.join(sys.prefix, "jupyterlab-pachyderm")


def client_module():
    pkg_dir = os.path.join(CLIENT_DIR, "jupyterlab_pachyderm")
    if not os.path.isfile(os.path.join(pkg_dir, "mount_server_client.py")):
        pytest.fail(f"jupyterlab-pachyderm is not installed in {CLIENT_DIR}: run scripts/setup")
    if "jupyterlab_pachyderm" not in sys.modules:
        pkg = types.ModuleType("jupyterlab_pachyderm")
        pkg.__path__ = [pkg_dir]
        sys.modules["jupyterlab_pachyderm"] = pkg
    return importlib.import_module("jupyterlab_pachyderm.mount_server_client")


@pytest.fixture
def mount_server(pfs_server, tmp_path):
    """The mount server on a unix socket, where the client looks by default (its DEFAULT_SCHEMA)."""
    sock_dir = tempfile.mkdtemp(prefix="jlp")  # a socket path has at most 107 bytes
    server = MountServer(tmp_path / "mount", pfs_server.address, socket=os.path.join(sock_dir, "pfs.sock")).start()
    yield server
    server.stop(timeout=10)
    shutil.rmtree(sock_dir, ignore_errors=True)


def drive(ms, steps):
    """Runs `steps(client)` on a fresh event loop with a fresh MountServerClient."""
    module = client_module()
    assert module.DEFAULT_SCHEMA == module.HTTP_UNIX_SOCKET_SCHEMA

    async def main():
        return await steps(module.MountServerClient(ms.mount_dir, ms.socket))

    return asyncio.run(main())


def answer(body) -> object:
    return json.loads(body)


def http_error(ms, steps):
    """The HTTPClientError (code, body text) the client raised."""
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as e:
        drive(ms, steps)
    return e.value.code, e.value.response.body.decode() if e.value.response else ""


def frontend_mount(project, repo, branch="master"):
    """The body the extension's "Mount" button sends (its name rule included)."""
    name = f"{project}_{repo}" if branch == "master" else f"{project}_{repo}_{branch}"
    return {"mounts": [{"name": name, "repo": repo, "branch": branch, "project": project, "mode": "ro"}]}


@pytest.fixture
def images(pach):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("images"))
    put(pach, "images@master", {"/a.txt": b"a", "/b.txt": b"bb", "/dir/c.txt": b"ccc"})
    return "images"


def test_health_config_projects_and_repos(mount_server, pfs_server, pach, images):
    pach.pfs.create_project(project=pfs.Project(name="lab"), description="the lab")
    pach.pfs.create_branch(branch=pfs.Branch.from_uri("images@dev"), head=pfs.Commit.from_uri("images@master"))

    async def steps(c):
        return [answer(x) for x in (await c.health(), await c.config(), await c.list_projects(), await c.list_repos())]

    health, config, projects, repos = drive(mount_server, steps)
    assert health == {"status": "running"}
    assert config["cluster_status"] == "AUTH_DISABLED" and config["pachd_address"] == pfs_server.address
    # the frontend lists projects by `project.name`
    assert sorted(p["project"]["name"] for p in projects) == ["default", "lab"]
    lab = next(p for p in projects if p["project"]["name"] == "lab")
    assert lab["description"] == "the lab"
    assert abs(lab["created_at"]["seconds"] - time.time()) < 600  # Go's encoding/json of a Timestamp
    # and offers each repo's branches, unless `authorization` is "none"
    assert repos == [{"project": "default", "repo": "images", "branches": ["dev", "master"], "authorization": "off"}]


def test_mount_read_only_as_the_frontend_does(mount_server, pach, images):
    async def steps(c):
        first = answer(await c.mount(frontend_mount("default", "images")))
        second = answer(await c.mount(frontend_mount("default", "images", "dev")))
        return first, second

    pach.pfs.create_branch(branch=pfs.Branch.from_uri("images@dev"), head=pfs.Commit.from_uri("images@master"))
    put(pach, "images@dev", {"/dev-only.txt": b"dev"})
    first, second = drive(mount_server, steps)
    mounted = {m["name"]: m for m in first["mounted"]}
    assert list(mounted) == ["default_images"]
    m = mounted["default_images"]
    # the fields the frontend's mounted list reads
    assert (m["repo"], m["project"], m["branch"], m["state"], m["how_many_commits_behind"]) == (
        "images",
        "default",
        "master",
        "mounted",
        0,
    )
    # every repo stays offered (another branch of it can be mounted)
    assert [(u["repo"], u["branches"]) for u in first["unmounted"]] == [("images", ["dev", "master"])]
    assert sorted(m["name"] for m in second["mounted"]) == ["default_images", "default_images_dev"]
    assert local_tree(os.path.join(mount_server.mount_dir, "default_images")) == tree(pach, "images@master")
    assert local_tree(os.path.join(mount_server.mount_dir, "default_images_dev")) == tree(pach, "images@dev")
    assert b"dev" == tree(pach, "images@dev")["/dev-only.txt"]

    put(pach, "images@master", {"/new.txt": b"new"})

    async def poll(c):
        return answer(await c.list_mounts())

    listing = drive(mount_server, poll)
    behind = {m["name"]: m["how_many_commits_behind"] for m in listing["mounted"]}
    assert behind == {"default_images": 1, "default_images_dev": 0}  # shown as "1 commit behind"


def test_read_write_mount_commits_on_unmount(mount_server, pach, images):
    before = tree(pach, "images@master")
    spec = {"mounts": [{"name": "labels", "repo": "images", "branch": "master", "project": "default", "mode": "rw"}]}

    async def mount(c):
        return answer(await c.mount(spec))

    state = next(m for m in drive(mount_server, mount)["mounted"] if m["name"] == "labels")
    assert (state["mode"], state["state"]) == ("rw", "mounted")
    root = os.path.join(mount_server.mount_dir, "labels")
    with open(os.path.join(root, "labels.json"), "w") as f:
        f.write('{"cat": 1}')
    os.unlink(os.path.join(root, "a.txt"))

    async def commit_button(c):
        return await c.commit({"mount": "labels"})

    # the 2.8.10 client's commit() sends nothing: the changes stay staged until the unmount
    assert drive(mount_server, commit_button) is None
    assert tree(pach, "images@master") == before

    async def unmount(c):
        return answer(await c.unmount({"mounts": ["labels"]}))

    after = drive(mount_server, unmount)
    assert after["mounted"] == [] and [u["repo"] for u in after["unmounted"]] == ["images"]
    expected = {**before, "/labels.json": b'{"cat": 1}'}
    del expected["/a.txt"]
    assert tree(pach, "images@master") == expected
    assert not os.path.exists(root)


def test_commit_route_answers_the_mounts(mount_server, pach, images):
    """PUT /_commit as pachctl has it, through the client's own request method."""
    spec = {"mounts": [{"name": "labels", "repo": "images", "mode": "rw"}]}
    head = pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("images@master")).head.id

    async def steps(c):
        await c.mount(spec)
        with open(os.path.join(mount_server.mount_dir, "labels", "x.txt"), "w") as f:
            f.write("x")
        return answer((await c._put("_commit", {"mount": "labels"})).body)

    result = drive(mount_server, steps)
    assert [m["name"] for m in result["mounted"]] == ["labels"] and result["unmounted"]
    new_head = pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("images@master")).head.id
    assert new_head != head and result["commit"] == new_head
    assert tree(pach, "images@master")["/x.txt"] == b"x"


def test_unmount_all_commits_and_empties_the_mount_folder(mount_server, pach, images):
    async def steps(c):
        await c.mount(frontend_mount("default", "images"))
        await c.mount({"mounts": [{"name": "rw", "repo": "images", "mode": "rw"}]})
        with open(os.path.join(mount_server.mount_dir, "rw", "staged.txt"), "w") as f:
            f.write("staged")
        return answer(await c.unmount_all())

    result = drive(mount_server, steps)
    assert result["mounted"] == [] and [u["repo"] for u in result["unmounted"]] == ["images"]
    assert os.listdir(mount_server.mount_dir) == []
    assert tree(pach, "images@master")["/staged.txt"] == b"staged"


def test_config_put_and_a_bad_address(mount_server, pfs_server):
    async def steps(c):
        return answer(await c.config({"pachd_address": pfs_server.address}))

    assert drive(mount_server, steps)["cluster_status"] == "AUTH_DISABLED"

    async def bad(c):
        await c.config({"pachd_address": "ftp://somewhere:1"})

    code, text = http_error(mount_server, bad)
    assert code == 400 and "ftp" in text

    async def get(c):
        return answer(await c.config())

    assert drive(mount_server, get)["pachd_address"] == pfs_server.address  # unchanged


# -- datums ------------------------------------------------------------------------------------


def shown(ms, name) -> dict:
    return local_tree(os.path.join(ms.mount_dir, name))


def test_datums_of_a_glob_one_at_a_time(mount_server, pach, images):
    async def start(c):
        return answer(await c.mount_datums({"input": {"pfs": {"repo": "images", "glob": "/*"}}}))

    first = drive(mount_server, start)
    assert (first["idx"], first["num_datums"], first["all_datums_received"]) == (0, 3, True)
    assert len(first["id"]) == 64
    assert shown(mount_server, "default_images") == {"/a.txt": b"a"}

    async def info(c):
        return answer(await c.get_datums())

    state = drive(mount_server, info)
    assert (state["num_datums"], state["idx"], state["all_datums_received"]) == (3, 0, True)
    assert state["input"] == {
        "pfs": {"repo": "images", "glob": "/*", "project": "default", "branch": "master", "name": "default_images"}
    }

    async def forward(c):
        return answer(await c.next_datum())

    async def back(c):
        return answer(await c.prev_datum())

    assert drive(mount_server, forward)["idx"] == 1
    assert shown(mount_server, "default_images") == {"/b.txt": b"bb"}
    assert drive(mount_server, forward)["idx"] == 2
    assert shown(mount_server, "default_images") == {"/dir/c.txt": b"ccc"}  # a folder datum
    code, text = http_error(mount_server, forward)  # the frontend then shows "Reached final datum"
    assert code == 400 and "already at last datum" in text
    assert drive(mount_server, back)["idx"] == 1
    assert drive(mount_server, back)["idx"] == 0
    code, text = http_error(mount_server, back)
    assert code == 400 and "already at first datum" in text
    assert shown(mount_server, "default_images") == {"/a.txt": b"a"}


def test_cross_and_union_datums(mount_server, pach, images):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("models"))
    put(pach, "models@master", {"/m1.bin": b"1", "/m2.bin": b"2"})
    cross = {"cross": [{"pfs": {"repo": "images", "glob": "/*.txt"}}, {"pfs": {"repo": "models", "glob": "/"}}]}

    async def steps(c):
        first = answer(await c.mount_datums({"input": cross}))
        seen = [(shown(mount_server, "default_images"), shown(mount_server, "default_models"))]
        await c.next_datum()
        seen.append((shown(mount_server, "default_images"), shown(mount_server, "default_models")))
        return first, seen

    first, seen = drive(mount_server, steps)
    assert first["num_datums"] == 2  # (a.txt, b.txt) x the whole of models
    models = {"/m1.bin": b"1", "/m2.bin": b"2"}
    assert seen == [({"/a.txt": b"a"}, models), ({"/b.txt": b"bb"}, models)]

    union = {"union": [{"pfs": {"repo": "images", "glob": "/*.txt"}}, {"pfs": {"repo": "models", "glob": "/*"}}]}

    async def walk(c):
        states = [answer(await c.mount_datums({"input": union}))]
        names = [sorted(os.listdir(mount_server.mount_dir))]
        for _ in range(3):
            states.append(answer(await c.next_datum()))
            names.append(sorted(os.listdir(mount_server.mount_dir)))
        return states, names

    states, names = drive(mount_server, walk)
    assert [s["idx"] for s in states] == [0, 1, 2, 3] and states[0]["num_datums"] == 4
    # a union datum comes from one input: only that input's mount is there
    assert names == [["default_images"], ["default_images"], ["default_models"], ["default_models"]]
    assert shown(mount_server, "default_models") == {"/m2.bin": b"2"}


def test_datums_read_the_commit_they_started_from(mount_server, pach, images):
    async def start(c):
        return answer(await c.mount_datums({"input": {"pfs": {"repo": "images", "glob": "/*.txt"}}}))

    assert drive(mount_server, start)["num_datums"] == 2
    put(pach, "images@master", {"/b.txt": b"changed", "/z.txt": b"z"})

    async def forward(c):
        return answer(await c.next_datum())

    assert drive(mount_server, forward)["num_datums"] == 2
    assert shown(mount_server, "default_images") == {"/b.txt": b"bb"}


def test_bad_datum_specs_change_nothing(mount_server, pach, images):
    """A bad spec answers 400 with the reason, and other mounts (Label Studio's) stay."""
    mount_server.call("PUT", "/_mount", {"mounts": [{"name": "ls_ro_images", "repo": "images"}]}).raise_for_status()
    for body, reason in [
        ({"input": {"pfs": {"repo": "images"}}}, "glob"),
        ({"input": {"pfs": {"repo": "images", "glob": "/nothing-*"}}}, "zero datums"),
        ({"input": {"pfs": {"repo": "nope", "glob": "/*"}}}, "nope"),
        ({"input": {"pfs": {"repo": "images", "glob": "/*", "commit": "0" * 32}}}, "commit"),
        ({"input": {"cron": {"name": "tick", "spec": "@every 1m"}}}, "cron"),
        ({"pipeline": {"name": "p"}}, "input"),
    ]:

        async def steps(c, body=body):
            await c.mount_datums(body)

        code, text = http_error(mount_server, steps)
        assert code in (400, 404) and reason in text, (body, code, text)
    assert os.listdir(mount_server.mount_dir) == ["ls_ro_images"]

    async def info(c):
        return answer(await c.get_datums())

    assert drive(mount_server, info) == {"num_datums": 0, "input": None, "idx": 0, "all_datums_received": False}

    async def forward(c):
        await c.next_datum()

    code, text = http_error(mount_server, forward)
    assert code == 400 and "no datums mounted" in text


def test_datum_mode_keeps_other_mounts_and_unmount_all_leaves_it(mount_server, pach, images):
    mount_server.call("PUT", "/_mount", {"mounts": [{"name": "ls_rw_images", "repo": "images", "mode": "rw"}]})
    with open(os.path.join(mount_server.mount_dir, "ls_rw_images", "label.json"), "w") as f:
        f.write("{}")
    head = pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("images@master")).head.id

    async def steps(c):
        await c.mount(frontend_mount("default", "images"))  # replaced by the datum's own mount
        await c.mount_datums({"input": {"pfs": {"repo": "images", "glob": "/*"}}})
        during = sorted(os.listdir(mount_server.mount_dir))
        await c.next_datum()
        return during, answer(await c.get_datums())["num_datums"]

    during, num = drive(mount_server, steps)
    assert during == ["default_images", "ls_rw_images"] and num == 3
    assert shown(mount_server, "default_images") == {"/b.txt": b"bb"}
    staged = mount_server.call("GET", "/mounts/ls_rw_images/staged").json()
    assert staged["added"] == ["label.json"]  # untouched, not committed
    assert pach.pfs.inspect_branch(branch=pfs.Branch.from_uri("images@master")).head.id == head

    # an input whose mount name is a read-write mount's is refused, not committed
    async def clash(c):
        await c.mount_datums({"input": {"pfs": {"repo": "images", "glob": "/*", "name": "ls_rw_images"}}})

    code, text = http_error(mount_server, clash)
    assert code == 409 and "read-write" in text

    async def leave(c):
        await c.unmount_all()
        return answer(await c.get_datums())

    assert drive(mount_server, leave)["num_datums"] == 0
    assert os.listdir(mount_server.mount_dir) == []


def test_the_frontends_datum_round_trip(mount_server, pach, images):
    """The extension's datum browser: its input spec is made from the mounted repos (their mount
    names, glob "/"), the user narrows the glob, steps, then leaves with _unmount_all and mounts
    the repos again from that spec."""
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("models"))
    put(pach, "models@master", {"/m.bin": b"m"})

    async def steps(c):
        await c.mount(frontend_mount("default", "images"))
        await c.mount(frontend_mount("default", "models"))
        mounted = answer(await c.list_mounts())["mounted"]
        # saveMountedReposList: one pfs input per mounted repo, crossed
        spec = {"cross": [{"pfs": {"name": f"{m['project']}_{m['repo']}", "repo": m["repo"], "glob": "/"}}
                          for m in mounted]}
        whole = answer(await c.mount_datums({"input": spec}))
        spec["cross"][0]["pfs"]["glob"] = "/*.txt"
        narrowed = answer(await c.mount_datums({"input": spec}))
        views = [(shown(mount_server, "default_images"), shown(mount_server, "default_models"))]
        await c.next_datum()
        views.append((shown(mount_server, "default_images"), shown(mount_server, "default_models")))
        await c.unmount_all()
        # restoreMountedReposList
        for p in spec["cross"]:
            await c.mount({"mounts": [{"name": p["pfs"]["name"], "repo": p["pfs"]["repo"], "project": "default",
                                       "branch": "master", "mode": "ro"}]})
        return whole, narrowed, views, answer(await c.get_datums())

    whole, narrowed, views, after = drive(mount_server, steps)
    assert whole["num_datums"] == 1 and narrowed["num_datums"] == 2
    assert views == [({"/a.txt": b"a"}, {"/m.bin": b"m"}), ({"/b.txt": b"bb"}, {"/m.bin": b"m"})]
    assert after["num_datums"] == 0
    assert shown(mount_server, "default_images") == tree(pach, "images@master")
    assert shown(mount_server, "default_models") == {"/m.bin": b"m"}
