"""Fixtures for the integration tests of the appliance image: a real Docker engine (docker-py on
its socket), the image built by scripts/docker-engine once per run, and containers, volumes
and networks that are removed afterwards (all labelled, so a crashed run is cleaned up too)."""
import contextlib
import fcntl
import json
import os
import pathlib
import subprocess
import time
import uuid

import pytest
import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("PACHSTUDIO_IMAGE", "pachstudio")
LABEL = "pachstudio.test"
ARTIFACTS = REPO / "test-artifacts"
ENGINE_LOG = ARTIFACTS / "docker-engine.log"
FUSE_FLAGS = {"devices": ["/dev/fuse:/dev/fuse:rwm"], "cap_add": ["SYS_ADMIN"]}
ADMIN = "admin@example.com"
PASSWORD = "pachstudio-test-password"
TOKEN = "pachstudio-test-token-0123456789"


# Everything a test session makes carries LABEL=<its pid>: a session removes its own things, and
# the leftovers of sessions that died, but never those of another session running beside it.
SESSION = str(os.getpid())
LABELS = {LABEL: SESSION}


def _ours_or_orphaned(labels) -> bool:
    owner = (labels or {}).get(LABEL, "")
    if owner == SESSION:
        return True
    try:
        os.kill(int(owner), 0)
        return False
    except (ValueError, ProcessLookupError):
        return True
    except PermissionError:
        return False


def _remove_labelled(client):
    for c in client.containers.list(all=True, filters={"label": LABEL}):
        if _ours_or_orphaned(c.labels):
            c.remove(force=True, v=True)
    for n in client.networks.list(filters={"label": LABEL}):
        if _ours_or_orphaned(n.attrs.get("Labels")):
            n.remove()
    for v in client.volumes.list(filters={"label": LABEL}):
        if _ours_or_orphaned(v.attrs.get("Labels")):
            v.remove(force=True)


ENGINE_STATE = ARTIFACTS / "docker-engine.state"  # the run that started scripts/docker-engine; then its exit code


def _run_id(config) -> str:
    """One id for the whole run: pytest-xdist gives its workers the same `testrunuid`."""
    workerinput = getattr(config, "workerinput", None)
    return workerinput["testrunuid"] if workerinput else f"pid-{os.getpid()}"


_build: list = []  # the build this process started, polled so that it is reaped


def _engine_state() -> list[str]:
    for build in _build:
        build.poll()
    try:
        return ENGINE_STATE.read_text().split()
    except FileNotFoundError:
        return []


def docker_engine_ended(config) -> bool:
    state = _engine_state()
    return state[:1] == [_run_id(config)] and len(state) > 1


def start_docker_engine(config) -> None:
    """Starts scripts/docker-engine in the background, once a run: the first process to ask (with
    pytest-xdist, one of the workers) starts it, under a lock, for all. Idempotent: it starts an
    engine where none answers and reuses Docker's build cache. Output: test-artifacts/docker-engine.log."""
    ARTIFACTS.mkdir(exist_ok=True)
    run = _run_id(config)
    with open(ARTIFACTS / "docker-engine.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _engine_state()[:1] == [run]:
            return
        ENGINE_STATE.write_text(run + "\n")
        # the exit code is appended by the shell, so it lands whichever process outlives the build
        _build.append(subprocess.Popen(
            ["bash", "-c", '"$0" > "$1" 2>&1; echo "$?" >> "$2"', str(REPO / "scripts" / "docker-engine"),
             str(ENGINE_LOG), str(ENGINE_STATE)], stdin=subprocess.DEVNULL))


def wait_docker_engine(config) -> int:
    """scripts/docker-engine's exit code, once it has ended (started now if it was not)."""
    start_docker_engine(config)
    run = _run_id(config)
    while True:
        state = _engine_state()
        if state[:1] != [run]:
            raise RuntimeError(f"{ENGINE_STATE} was taken over by another run: {state}")
        if len(state) > 1:
            return int(state[1])
        time.sleep(0.5)


def pytest_collection_finish(session):
    """When the selected tests include an image test, the engine and the image are made ready in
    the background from here, while the other tests run; the first image test waits for them,
    outside its timeout (the build takes minutes on a fresh machine). A run without image tests
    never touches Docker."""
    if session.config.option.collectonly:
        return
    if any(item.get_closest_marker("image") for item in session.items):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"image tests selected: scripts/docker-engine in the background (log: {ENGINE_LOG})")
        start_docker_engine(session.config)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outside pytest-timeout's wrapper: the wait is not the test's
def pytest_runtest_protocol(item):
    if item.get_closest_marker("image") and not docker_engine_ended(item.config):
        reporter = item.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"waiting for scripts/docker-engine (log: {ENGINE_LOG})")
        wait_docker_engine(item.config)
    yield


@pytest.fixture(scope="session")
def docker_client(pytestconfig):
    """The engine and the `pachstudio` image, made ready by scripts/docker-engine (run once a
    run, normally already before the first image test)."""
    rc = wait_docker_engine(pytestconfig)
    if rc != 0:
        pytest.fail(f"scripts/docker-engine failed ({rc}); see {ENGINE_LOG}:\n" + ENGINE_LOG.read_text()[-3000:])
    import docker

    client = docker.from_env(timeout=300)
    client.images.get(IMAGE)
    _remove_labelled(client)
    yield client
    _remove_labelled(client)
    client.close()


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Appliance:
    """One container of the image; start(), wait_healthy(), the Label Studio API on its port."""

    def __init__(self, client, *, volume=None, command=None, env=None, fuse=True, network=None,
                 name=None, config_json=None, ports=("8080/tcp", "30650/tcp"), tmp_path=None, files=None,
                 cap_add=()):
        self.client = client
        self.volume = volume
        self.command = command
        self.env = {"LABEL_STUDIO_USERNAME": ADMIN, "LABEL_STUDIO_PASSWORD": PASSWORD,
                    "LABEL_STUDIO_USER_TOKEN": TOKEN}
        self.env.update(env or {})
        self.env = {k: v for k, v in self.env.items() if v is not None}
        self.fuse = fuse
        self.network = network
        self.name = name or new_name("pachstudio-test")
        self.config_json = config_json
        self.ports = ports
        self.tmp_path = tmp_path
        self.files = files or {}  # container path -> text, bind-mounted read-only
        self.cap_add = list(cap_add)  # capabilities beyond FUSE's (docker run --cap-add)
        self.container = None
        self.saved_logs = ""

    def start(self):
        kwargs = dict(detach=True, name=self.name, labels=LABELS, environment=self.env,
                      ports={p: None for p in self.ports})
        if self.command:
            kwargs["command"] = self.command
        if self.fuse == "device-only":
            kwargs["devices"] = FUSE_FLAGS["devices"]
        elif self.fuse:
            kwargs.update(FUSE_FLAGS)
        if self.cap_add:
            kwargs["cap_add"] = sorted(set(kwargs.get("cap_add", [])) | set(self.cap_add))
        volumes = {}
        if self.volume:
            volumes[self.volume] = {"bind": "/data", "mode": "rw"}
        if self.config_json is not None:
            cfg = pathlib.Path(self.tmp_path) / f"{self.name}-config.json"
            cfg.write_text(self.config_json if isinstance(self.config_json, str) else json.dumps(self.config_json))
            volumes[str(cfg)] = {"bind": "/root/.pachyderm/config.json", "mode": "ro"}
        for i, (path, text) in enumerate(self.files.items()):
            host = pathlib.Path(self.tmp_path) / f"{self.name}-file-{i}"
            host.write_text(text)
            volumes[str(host)] = {"bind": path, "mode": "ro"}
        if volumes:
            kwargs["volumes"] = volumes
        if self.network:
            kwargs["network"] = self.network
        self.container = self.client.containers.run(IMAGE, **kwargs)
        return self

    def logs(self) -> str:
        try:
            self.saved_logs = self.container.logs().decode(errors="replace")
        except Exception:  # removed already: what was read last
            pass
        return self.saved_logs

    def state(self) -> dict:
        self.container.reload()
        return self.container.attrs["State"]

    def port(self, port: str = "8080/tcp") -> int:
        self.container.reload()
        return int(self.container.ports[port][0]["HostPort"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port()}"

    @property
    def pachd_address(self) -> str:
        return f"grpc://127.0.0.1:{self.port('30650/tcp')}"

    def wait_healthy(self, timeout=300):
        """Until the image's HEALTHCHECK command passes, run here with `docker exec` as soon as the
        container could pass it (Label Studio's published port answers /health, where it has one),
        not at Docker's interval: Docker says "healthy" only at its next check, up to 5 s later.
        Fails at once (with the log) if the container exits."""
        import docker

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"]:
                raise AssertionError(f"container exited ({state['ExitCode']}):\n{self.logs()[-5000:]}")
            if state.get("Health", {}).get("Status") == "healthy":
                return self
            if "8080/tcp" not in self.ports or self._answers_health():
                try:
                    if self.container.exec_run(["healthcheck"]).exit_code == 0:
                        return self
                except docker.errors.APIError:  # it stopped meanwhile: the next state() says how
                    pass
            time.sleep(0.25)
        raise AssertionError(f"not healthy after {timeout}s:\n{self.logs()[-5000:]}")

    def _answers_health(self) -> bool:
        try:
            return requests.get(self.url + "/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_exit(self, timeout=120) -> int:
        return self.container.wait(timeout=timeout)["StatusCode"]

    def stop(self, timeout=30):
        self.container.stop(timeout=timeout)

    def remove(self):
        if self.container is not None:
            self.logs()
            try:
                self.container.remove(force=True, v=True)  # with its anonymous /data volume
            except Exception:
                pass

    def api(self) -> "LabelStudioApi":
        return LabelStudioApi(self.url, TOKEN)

    def exec(self, *cmd) -> tuple[int, str]:
        rc, out = self.container.exec_run(list(cmd))
        return rc, out.decode(errors="replace")


class LabelStudioApi:
    """The REST calls a user (or the Label Studio SDK) makes, with the first user's token."""

    def __init__(self, url, token):
        self.url = url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Token {token}"

    def call(self, method, path, expect=(200, 201, 204), **kwargs):
        r = self.http.request(method, self.url + path, timeout=300, **kwargs)
        if r.status_code not in expect:
            raise AssertionError(f"{method} {path} -> {r.status_code}: {r.text[:2000]}")
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else r

    def create_project(self, title="pachstudio test"):
        config = ('<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
                  '<Choice value="cat"/><Choice value="dog"/></Choices></View>')
        return self.call("POST", "/api/projects/", json={"title": title, "label_config": config})

    def tasks(self, project_id):
        out = self.call("GET", f"/api/tasks/?project={project_id}&page_size=1000")
        return out["tasks"] if isinstance(out, dict) else out

    def annotate(self, task_id, choice="cat"):
        result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}]
        return self.call("POST", f"/api/tasks/{task_id}/annotations/", json={"result": result})


@contextlib.contextmanager
def appliances(docker_client, tmp_path):
    """`make(**kwargs)` starts appliances (or pfs-server containers) of the image; on leaving,
    each one's log is saved under test-artifacts and the container is removed."""
    made = []

    def make(**kwargs):
        app = Appliance(docker_client, tmp_path=tmp_path, **kwargs)
        made.append(app)
        return app.start()

    try:
        yield make
    finally:
        for app in made:
            if app.container is not None:
                app.remove()  # reads the container's log one last time, then removes it
                (ARTIFACTS / f"{app.name}.log").write_text(app.saved_logs)


@pytest.fixture
def appliance_factory(docker_client, tmp_path):
    """Appliances removed after the test."""
    with appliances(docker_client, tmp_path) as make:
        yield make


@pytest.fixture(scope="module")
def module_appliances(docker_client, tmp_path_factory):
    """The appliance maker, with containers that live for the whole module: for tests that only look
    at a container, or change nothing another test of the module reads (starting one costs most of
    a minute)."""
    with appliances(docker_client, tmp_path_factory.mktemp("appliances")) as make:
        yield make


@pytest.fixture(scope="module")
def module_network(docker_client):
    """A user-defined bridge network for a module's containers (they find each other by name)."""
    network = docker_client.networks.create(new_name("pachstudio-test-net"), driver="bridge", labels=LABELS)
    yield network.name
    try:
        network.remove()
    except Exception:  # noqa: BLE001 - a container still attached: the session cleanup removes it
        pass


@pytest.fixture
def data_volume(docker_client):
    volume = docker_client.volumes.create(name=new_name("pachstudio-test-data"), labels=LABELS)
    yield volume.name
    try:
        volume.remove(force=True)
    except Exception:
        pass


@pytest.fixture
def test_network(docker_client):
    network = docker_client.networks.create(new_name("pachstudio-test-net"), driver="bridge", labels=LABELS)
    yield network.name
    try:
        network.remove()
    except Exception:
        pass


def sdk_client(address: str, timeout: float = 120, **client_args):
    """The ordinary SDK on a container's published port, once the PFS server there answers
    (`client_args` go to Client.from_pachd_address, e.g. root_certs for grpcs://)."""
    from pachyderm_sdk import Client

    deadline = time.monotonic() + timeout
    while True:
        client = Client.from_pachd_address(address, **client_args)
        try:
            list(client.pfs.list_repo())
            return client
        except Exception:  # noqa: BLE001 - not up yet; the last error is raised at the deadline
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def put_json_tasks(client, texts: dict, repo="images"):
    """A new repo whose master holds one `{"text": ...}` file per path of `texts`."""
    from pachyderm_sdk.api import pfs

    client.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as commit:
        for path, text in texts.items():
            commit.put_file_from_bytes(path=f"/{path}", data=json.dumps({"text": text}).encode())


def files_at(client, uri: str) -> set:
    """The paths of the files (not folders) at a `repo@branch:/path` or `repo@commit:/path`."""
    from pachyderm_sdk.api import pfs

    return {f.file.path for f in client.pfs.walk_file(file=pfs.File.from_uri(uri))
            if f.file_type == pfs.FileType.FILE}


# --- The storage flow a user goes through on the image, shared by the image tests ---------------
TEXTS = {"tasks/0.json": "a cat on a mat", "tasks/1.json": "a dog in a fog", "tasks/2.json": "a cat in a hat"}


def put_source_files(client, repo="images"):
    put_json_tasks(client, TEXTS, repo)


def commits(client, repo: str) -> list:
    from pachyderm_sdk.api import pfs

    try:
        return list(client.pfs.list_commit(repo=pfs.Repo.from_uri(repo)))
    except Exception:
        return []


def wait_storage(api, path, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        storage = api.call("GET", path)
        if storage.get("status") in ("completed", "failed") or time.monotonic() > deadline:
            assert storage.get("status") == "completed", storage
            return storage
        time.sleep(0.5)


def import_and_label(api, client, labels_repo="labels", annotate=3):
    """Project + Pachyderm Source over `images`, sync, Target on a new repo `labels_repo`, annotate."""
    from pachyderm_sdk.api import pfs

    client.pfs.create_repo(repo=pfs.Repo.from_uri(labels_repo))
    project = api.create_project()
    source = api.call("POST", "/api/storages/pachyderm", json={
        "project": project["id"], "title": "images", "pach_project": "default", "repo": "images",
        "branch": "master", "prefix": "tasks", "use_blob_urls": False, "recursive_scan": True})
    api.call("POST", f"/api/storages/pachyderm/{source['id']}/sync")
    wait_storage(api, f"/api/storages/pachyderm/{source['id']}")
    tasks = api.tasks(project["id"])
    assert sorted(t["data"]["text"] for t in tasks) == sorted(TEXTS.values())
    assert all(t["data"].get("pachyderm_commit") for t in tasks)
    target = api.call("POST", "/api/storages/export/pachyderm", json={
        "project": project["id"], "title": "labels", "pach_project": "default", "repo": labels_repo,
        "branch": "master", "prefix": "annotations", "file_format": "annotation"})
    annotations = [api.annotate(t["id"], "cat" if "cat" in t["data"]["text"] else "dog") for t in tasks[:annotate]]
    return project, target, annotations


def target_sync_makes_one_commit(api, client, target, annotations, repo="labels"):
    before = {c.commit.id for c in commits(client, repo)}
    api.call("POST", f"/api/storages/export/pachyderm/{target['id']}/sync")
    wait_storage(api, f"/api/storages/export/pachyderm/{target['id']}")
    new = [c for c in commits(client, repo) if c.commit.id not in before]
    assert len(new) == 1, f"expected one commit from Target Sync, got {len(new)}"
    files = files_at(client, f"{repo}@{new[0].commit.id}:/")
    assert files == {f"/annotations/{a['id']}.json" for a in annotations}
    parent = new[0].parent_commit
    if parent and parent.id:
        assert not files_at(client, f"{repo}@{parent.id}:/") & files, "the annotations were not all in that one commit"
    return new[0]
