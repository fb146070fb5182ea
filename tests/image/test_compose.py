"""The team set-up: compose.yaml as the README shows it (`docker compose up`), the appliance on a real
PostgreSQL server. Run with Debian's docker-compose, which reads the same file; `postgres:15` is the
public image where it can be pulled, else tests/postgres/ built under that name (same variables)."""
import os
import subprocess
import time

import pytest

from image.test_image_appliance import TEXTS, import_and_label, target_sync_makes_one_commit
from plugins.image import REPO, new_name, put_json_tasks, sdk_client

pytestmark = pytest.mark.image



def readme_secrets_step() -> str:
    """The README's commands that make the secret files, as the README shows them."""
    text = (REPO / "README.md").read_text()
    start = text.index("    mkdir -p -m 700 secrets")
    block = text[start:text.index("\n\n", start)]
    return "\n".join(line[4:] for line in block.splitlines() if not line.strip().startswith("docker compose"))


class Compose:
    """`docker-compose -f compose.yaml` in a folder of the test's own, as a user runs it."""

    def __init__(self, folder, docker_client):
        self.folder, self.docker = folder, docker_client
        self.project = new_name("pachstudio-compose").replace("-", "")
        self.env = dict(os.environ, PACHSTUDIO_PORT=str(_free_port()), LABEL_STUDIO_USERNAME="admin@example.com")

    def __call__(self, *args, timeout=600):
        done = subprocess.run(["docker-compose", "-f", str(REPO / "compose.yaml"), "--project-directory",
                               str(self.folder), "-p", self.project, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stderr[-3000:]}"
        return done

    def container(self, service):
        return self.docker.containers.get(f"{self.project}_{service}_1")

    def wait_healthy(self, service="label-studio", timeout=300) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            c = self.container(service)
            if c.attrs["State"].get("Health", {}).get("Status") == "healthy":
                return time.monotonic() - start
            if not c.attrs["State"]["Running"] and c.attrs["State"]["Status"] == "exited":
                raise AssertionError(f"{service} exited:\n{c.logs().decode()[-4000:]}")
            time.sleep(0.5)
        log = self.container(service).logs().decode()[-4000:]
        raise AssertionError(f"{service} not healthy after {timeout}s:\n{log}")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.env['PACHSTUDIO_PORT']}"

    def network(self):
        return f"{self.project}_default"

    def pachd_address(self):
        c = self.container("label-studio")
        ip = c.attrs["NetworkSettings"]["Networks"][self.network()]["IPAddress"]
        return f"grpc://{ip}:30650"


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def compose_tools(docker_client):
    out = subprocess.run([str(REPO / "scripts" / "docker-engine"), "--no-build", "--compose"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


@pytest.fixture
def compose(tmp_path, docker_client, compose_tools):
    subprocess.run(["bash", "-euc", readme_secrets_step()], cwd=tmp_path, check=True)
    c = Compose(tmp_path, docker_client)
    c.pg_password = (tmp_path / "secrets" / "postgres-password").read_text().strip()
    c.ls_password = (tmp_path / "secrets" / "label-studio-password").read_text().strip()
    assert len(c.pg_password) >= 24 and len(c.ls_password) >= 18
    yield c
    for service in ("label-studio", "postgres"):
        try:
            log = c.container(service).logs().decode(errors="replace")
            (REPO / "test-artifacts" / f"{c.project}-{service}.log").write_text(log)
        except Exception:
            pass
    subprocess.run(["docker-compose", "-f", str(REPO / "compose.yaml"), "--project-directory", str(tmp_path),
                    "-p", c.project, "down", "-v", "--remove-orphans"], env=c.env, capture_output=True)


def api_for(url, password):
    import requests

    from plugins.image import LabelStudioApi

    http = requests.Session()
    http.get(url + "/user/login/", timeout=30)
    r = http.post(url + "/user/login/", data={"email": "admin@example.com", "password": password,
                  "csrfmiddlewaretoken": http.cookies.get("csrftoken")},
                  headers={"Referer": url + "/user/login/"}, timeout=30, allow_redirects=False)
    assert r.status_code == 302, "the first user logs in with the password from its secret file"
    token = http.get(url + "/api/current-user/token", timeout=30).json()["token"]
    return LabelStudioApi(url, token)


def test_compose_up_runs_the_storage_flow_on_postgresql_and_a_restart_loses_nothing(compose):
    compose("up", "-d", "--no-build")
    first_start = compose.wait_healthy()
    logs = compose.container("label-studio").logs().decode()
    assert compose.pg_password not in logs and compose.ls_password not in logs
    rc, out = compose.container("postgres").exec_run(
        ["psql", "-h", "127.0.0.1", "-U", "labelstudio", "-d", "labelstudio", "-tAc",
         "SELECT count(*) FROM django_migrations"], environment={"PGPASSWORD": compose.pg_password})
    assert rc == 0 and int(out) > 100, "Label Studio's tables are in PostgreSQL"

    client = sdk_client(compose.pachd_address())
    put_json_tasks(client, TEXTS)
    api = api_for(compose.url, compose.ls_password)
    project, target, annotations = import_and_label(api, client)
    target_sync_makes_one_commit(api, client, target, annotations)
    staged = api.annotate(api.tasks(project["id"])[0]["id"], "dog")  # staged, not synced

    compose("restart", "label-studio")
    restart = compose.wait_healthy()
    print(f"\ncompose on PostgreSQL: first start {first_start:.1f} s to healthy, restart {restart:.1f} s")
    api = api_for(compose.url, compose.ls_password)
    tasks = api.tasks(project["id"])
    assert len(tasks) == len(TEXTS)
    assert sum(t["total_annotations"] for t in tasks) == len(annotations) + 1
    api.call("POST", f"/api/storages/export/pachyderm/{target['id']}/sync")
    from image.test_image_appliance import commits, wait_storage
    from plugins.image import files_at

    wait_storage(api, f"/api/storages/export/pachyderm/{target['id']}")
    head = commits(client, "labels")[0]
    assert f"/annotations/{staged['id']}.json" in files_at(client, f"labels@{head.commit.id}:/")


def test_a_wrong_database_password_or_host_stops_the_start_naming_the_host(compose, appliance_factory):
    compose("up", "-d", "--no-build", "postgres")
    compose.wait_healthy("postgres")
    common = {"DJANGO_DB": "postgresql", "POSTGRE_PORT": "5432", "POSTGRE_NAME": "labelstudio",
              "POSTGRE_USER": "labelstudio"}
    wrong = appliance_factory(network=compose.network(), env={
        **common, "POSTGRE_HOST": "postgres", "POSTGRE_PASSWORD": "not-the-password-9931"})
    assert wrong.wait_exit() == 1
    log = wrong.logs()
    assert "cannot use PostgreSQL at postgres:5432 (database 'labelstudio', user 'labelstudio')" in log
    assert "password authentication failed" in log
    assert "not-the-password-9931" not in log

    gone = appliance_factory(network=compose.network(), env={
        **common, "POSTGRE_HOST": "no-such-db-host", "POSTGRE_PASSWORD": "x-secret-7", "PACHSTUDIO_DB_WAIT": "3"})
    assert gone.wait_exit() == 1
    log = gone.logs()
    where = "PostgreSQL at no-such-db-host:5432 (database 'labelstudio', user 'labelstudio')"
    assert f"{where} did not answer within 3 s" in log
    assert "x-secret-7" not in log
