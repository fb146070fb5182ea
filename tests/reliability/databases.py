"""The two databases the appliance runs Label Studio on, for tests that run on both: SQLite (the
default, inside /data) and PostgreSQL 15 in a container of its own, wired as compose.yaml wires it.

`postgres:15` is the public image where it can be pulled, else tests/postgres/ built under that name
(`scripts/docker-engine --compose`, run here once when the image is missing)."""
import subprocess
import time

from plugins.image import LABELS, REPO, new_name

DATABASES = ("sqlite", "postgresql")
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
PG_IMAGE = "postgres:15"
PG_USER = PG_DB = "labelstudio"
PG_PASSWORD = "pachstudio-test-pg-password"


def _pg_image(docker_client):
    try:
        docker_client.images.get(PG_IMAGE)
    except Exception:  # noqa: BLE001 - not there: made as the compose test makes it
        out = subprocess.run([str(REPO / "scripts" / "docker-engine"), "--no-build", "--compose"],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]


def start_postgres(docker_client, network: str, timeout=120):
    """A fresh PostgreSQL on `network`, returned once it accepts a password login over TCP."""
    _pg_image(docker_client)
    container = docker_client.containers.run(
        PG_IMAGE, detach=True, name=new_name("pachstudio-test-pg"), labels=LABELS, network=network,
        environment={"POSTGRES_USER": PG_USER, "POSTGRES_DB": PG_DB, "POSTGRES_PASSWORD": PG_PASSWORD})
    deadline = time.monotonic() + timeout
    while True:
        # TCP, not the socket: the official image's initialisation server listens on no TCP port.
        rc, out = container.exec_run(["psql", "-q", "-h", "127.0.0.1", "-U", PG_USER, "-d", PG_DB, "-c", "select 1"],
                                     environment={"PGPASSWORD": PG_PASSWORD})
        if rc == 0:
            return container
        container.reload()
        assert container.status == "running", container.logs().decode(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"PostgreSQL not answering after {timeout}s: {out!r}"
        time.sleep(0.3)


def appliance_env(pg_container) -> dict:
    """The appliance's environment for Label Studio on that PostgreSQL (as compose.yaml sets it)."""
    return {"DJANGO_DB": "postgresql", "POSTGRE_HOST": pg_container.name, "POSTGRE_PORT": "5432",
            "POSTGRE_NAME": PG_DB, "POSTGRE_USER": PG_USER, "POSTGRE_PASSWORD": PG_PASSWORD}


def remove(container):
    try:
        container.remove(force=True, v=True)
    except Exception:  # noqa: BLE001 - gone already; the session sweep removes leftovers
        pass
