"""Faults (issue 7): labels are human work that cannot be re-made cheaply, so whatever breaks (the
cluster, a process, the container, the network) no label may be lost or committed twice.

Each test breaks one real part of the built image under real Docker (kill -9, docker kill/stop,
docker network disconnect), then ends by reading every label back through the Pachyderm SDK."""
import os
import threading
import time

import pytest

from plugins.image import LABELS, new_name, sdk_client

from .databases import DATABASES
from .fault_steps import (
    TARGET,
    annotate,
    card,
    check_every_label,
    commits,
    files_at,
    head,
    import_and_label,
    kill9,
    mount_server,
    new_files_of,
    one_new_commit,
    put_source_files,
    rw_mount,
    staged_labels,
    sync,
    wait_card,
    wait_for,
    wait_restarted,
)


def label_files(annotations) -> set:
    return {f"/annotations/{a['id']}.json" for a in annotations}


def reason_of(storage) -> str:
    """What the card shows for a failed Sync (Label Studio's "View Logs": the traceback field)."""
    return (storage.get("traceback") or (storage.get("meta") or {}).get("error") or "").strip()


def remote_cluster(appliance_factory, network):
    """A `pfs-server` container: the cluster, on its own user-defined network."""
    pachd = appliance_factory(command=["pfs-server"], network=network, fuse=False,
                              ports=("30650/tcp",)).wait_healthy()
    return pachd, sdk_client(pachd.pachd_address)


def freeze(pachd):
    """`docker pause` the cluster and make sure it no longer answers (a call must time out)."""
    import grpc
    from pachyderm_sdk.api import pfs

    pachd.container.pause()
    pachd.container.reload()
    assert pachd.container.status == "paused", pachd.container.status
    with grpc.insecure_channel(pachd.pachd_address.removeprefix("grpc://")) as channel:
        probe = channel.unary_unary("/pfs_v2.API/InspectRepo", request_serializer=bytes, response_deserializer=bytes)
        try:
            probe(bytes(pfs.InspectRepoRequest(repo=pfs.Repo.from_uri("labels"))), timeout=3)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc
        else:
            raise AssertionError("the paused cluster still answers")


def cluster_config(pachd) -> dict:
    return {"v2": {"active_context": "lab", "contexts": {"lab": {"pachd_address": f"grpc://{pachd.name}:30650"}}}}


@pytest.fixture
def front_network(docker_client):
    """A second network for the appliance's published port, so the cluster network can be cut
    while the API stays reachable (as on a host where users and the cluster are on different nets)."""
    network = docker_client.networks.create(new_name("pachstudio-test-front"), driver="bridge", labels=LABELS)
    yield network
    try:
        network.remove()
    except Exception:  # noqa: BLE001 - a container may still hold it; the session sweep removes it
        pass


@pytest.mark.reliability("Fault", "cluster (a pfs-server container) stopped (`docker kill`) during a Target Sync")
def test_cluster_stopped_during_a_target_sync(appliance_factory, test_network, outcome):
    """The cluster dies while a Sync talks to it: the card says why, the branch does not move, the
    staged labels stay; once the cluster is back the next Sync makes one commit holding them all."""
    pachd, client = remote_cluster(appliance_factory, test_network)
    put_source_files(client)
    app = appliance_factory(network=test_network, config_json=cluster_config(pachd), ports=("8080/tcp",)).wait_healthy()
    api = app.api()
    project, target, tasks, annotations = import_and_label(api, client)
    before = {c.commit.id for c in commits(client, "labels")}
    old_head = head(client, "labels")

    # Freeze the cluster so the Sync's calls hang in flight, then stop it under them. (SIGKILL: a
    # `docker stop` thaws it first and its graceful shutdown may still answer them.)
    calls_before = sum(mount_server(app, "/stats")["calls"].values())
    freeze(pachd)
    api.call("POST", f"{TARGET}/{target['id']}/sync")
    wait_for(lambda: sum(mount_server(app, "/stats")["calls"].values()) > calls_before,
             "the Sync calling the cluster", timeout=120)
    assert card(api, target)["status"] in ("queued", "in_progress")
    pachd.container.kill()
    failed = wait_card(api, lambda: card(api, target), "failed", timeout=300)
    reason = reason_of(failed)
    assert "unreachable" in reason and pachd.name in reason, reason
    assert "Traceback" not in reason, reason
    staged = staged_labels(app)
    assert sorted(staged.values()) == sorted(a["id"] for a in annotations), staged
    late = annotate(api, tasks[3])  # labeling goes on while the cluster is away

    pachd.container.start()
    pachd.wait_healthy()
    client = sdk_client(pachd.pachd_address)
    assert head(client, "labels") == old_head, "the branch moved although the Sync failed"
    while_down = len(commits(client, "labels")) - len(before)
    assert while_down == 0, f"{while_down} commits appeared although the Sync failed"
    done = sync(api, target)
    new = one_new_commit(client, "labels", before)
    assert new_files_of(client, "labels", new) == label_files(annotations + [late])
    assert done["last_commit"] == new.commit.id and not reason_of(done)
    checked = check_every_label(api, client, project)
    outcome(f"card: failed, {reason.splitlines()[0]!r}; {while_down} new commits, branch head unchanged; "
            f"{len(staged)} staged labels kept (+1 made while down); after the cluster returned 1 Sync = "
            f"1 commit with {len(new_files_of(client, 'labels', new))} labels; "
            f"{checked} labels read back through the SDK")


@pytest.mark.reliability("Fault", "`kill -9` of the mount server inside the container")
def test_mount_server_killed(appliance_factory, data_volume, outcome):
    """supervisord restarts the mount server; /pfs and the Target's mount come back with the staged
    labels, a label saved while it was down is not lost, and the next Sync commits them all."""
    app = appliance_factory(volume=data_volume).wait_healthy()
    client = sdk_client(app.pachd_address)
    put_source_files(client)
    api = app.api()
    project, target, tasks, annotations = import_and_label(api, client)
    mounted = sorted(m["name"] for m in mount_server(app, "/mounts")["mounted"])
    before = {c.commit.id for c in commits(client, "labels")}

    started = time.monotonic()
    old_pid = kill9(app, "mount-server")
    during = annotate(api, tasks[3])  # saved while the mount server is down or just restarting
    new_pid = wait_restarted(app, "mount-server", old_pid)
    back = wait_for(lambda: sorted(m["name"] for m in mount_server(app, "/mounts")["mounted"]) == mounted
                    and rw_mount(app)["state"] == "mounted", "the mounts back")
    took = time.monotonic() - started
    assert back
    staged = staged_labels(app)
    assert set(staged.values()) >= {a["id"] for a in annotations}, staged
    rc, listing = app.exec("ls", f"{rw_mount(app)['mountpoint']}/annotations")
    assert rc == 0, listing
    after = annotate(api, tasks[4])

    sync(api, target)
    new = one_new_commit(client, "labels", before)
    assert new_files_of(client, "labels", new) == label_files(annotations + [during, after])
    checked = check_every_label(api, client, project)
    outcome(f"mount server pid {old_pid} killed, supervisord restarted it as pid {new_pid}; {len(mounted)} "
            f"mounts back after {took:.1f}s; {len(staged)} staged labels intact; 1 label saved during the "
            f"restart and 1 after; next Sync = 1 commit with {checked} labels, all read back through the SDK")


@pytest.mark.reliability("Fault", "`docker kill` of the appliance mid-labeling, then a start on the same volume")
@pytest.mark.parametrize("database", DATABASES)
@pytest.mark.timeout(1800)  # two starts; a first start on PostgreSQL took over 10 min on a busy machine
def test_appliance_killed_mid_labeling(appliance_factory, data_volume, on_database, outcome):
    """SIGKILL to the whole container while an annotator saves labels: after a start on the same
    /data (and the same PostgreSQL, which stays up) every label the API acknowledged is there, and
    one Sync commits each exactly once."""
    # A first start on PostgreSQL migrates an empty database (minutes on a busy machine).
    app = appliance_factory(volume=data_volume, **on_database).wait_healthy(timeout=900)
    client = sdk_client(app.pachd_address)
    put_source_files(client)
    api = app.api()
    project, target, tasks, annotations = import_and_label(api, client, annotate_first=1)
    acknowledged = [a["id"] for a in annotations]
    stop = threading.Event()

    def annotator():
        i = 1
        while not stop.is_set():
            try:
                acknowledged.append(annotate(api, tasks[i % len(tasks)])["id"])
            except Exception:  # noqa: BLE001 - the container dies under the request
                return
            i += 1

    worker = threading.Thread(target=annotator)
    worker.start()
    wait_for(lambda: len(acknowledged) >= 5, "labels being saved", timeout=120, every=0.05)
    app.container.kill()
    stop.set()
    worker.join(60)
    assert app.state()["ExitCode"] == 137
    killed_at = len(acknowledged)

    app.container.start()
    app.wait_healthy(timeout=900)
    api, client = app.api(), sdk_client(app.pachd_address)
    held = [i for t in api.tasks(project["id"]) for i in
            (a["id"] for a in api.call("GET", f"/api/tasks/{t['id']}/annotations/"))]
    assert set(acknowledged) <= set(held), f"lost: {sorted(set(acknowledged) - set(held))}"
    before = {c.commit.id for c in commits(client, "labels")}
    sync(api, target)
    new = one_new_commit(client, "labels", before)
    assert new_files_of(client, "labels", new) == {f"/annotations/{i}.json" for i in held}
    checked = check_every_label(api, client, project)
    outcome(f"killed (exit 137) after {killed_at} acknowledged labels; after a start on the same volume "
            f"Label Studio holds {len(held)} ({len(held) - killed_at} more saved as the kill hit); "
            f"next Sync = 1 commit with {checked} labels, each read back once through the SDK")


@pytest.mark.reliability("Fault", "two Target Sync requests at the same moment")
def test_two_syncs_at_once(appliance_factory, data_volume, outcome):
    """Two people press Sync together (requests may land on different gunicorn workers): one commit,
    and the card ends completed, showing that commit, with no error."""
    app = appliance_factory(volume=data_volume).wait_healthy()
    client = sdk_client(app.pachd_address)
    put_source_files(client)
    api = app.api()
    project, target, tasks, annotations = import_and_label(api, client, annotate_first=4)
    before = {c.commit.id for c in commits(client, "labels")}
    barrier = threading.Barrier(2)
    answers = []

    def press():
        own = app.api()
        barrier.wait()
        answers.append(own.http.post(f"{own.url}{TARGET}/{target['id']}/sync", timeout=120).status_code)

    pressers = [threading.Thread(target=press) for _ in range(2)]
    for t in pressers:
        t.start()
    for t in pressers:
        t.join(180)
    assert answers == [200, 200], answers
    done = wait_card(api, lambda: card(api, target))
    time.sleep(1)  # a second job, were one started, would show now
    done = wait_card(api, lambda: card(api, target))
    new = one_new_commit(client, "labels", before)
    assert new_files_of(client, "labels", new) == label_files(annotations)
    assert not reason_of(done) and not done["meta"].get("error"), done
    assert done["last_commit"] == new.commit.id, done
    jobs = done["meta"]["attempts"] - 1  # the first attempt staged the labels when the Target was made
    checked = check_every_label(api, client, project)
    outcome(f"both requests answered {answers}; {len(commits(client, 'labels')) - len(before)} new commit; "
            f"{jobs} Sync job(s) ran; card: {done['status']}, last commit {done['last_commit'][:12]}, no error; "
            f"{checked} labels read back through the SDK")


class Stream:
    """`size` bytes of data for the SDK to upload, made as it reads (no 300 MiB file on disk)."""

    def __init__(self, size: int):
        self.left = size
        self.block = os.urandom(1 << 20)
        self.sent = 0

    def read(self, n=-1) -> bytes:
        n = min(self.left, len(self.block) if n is None or n < 0 else n, len(self.block))
        self.left -= n
        self.sent += n
        return self.block[:n]


@pytest.mark.reliability("Fault", "`kill -9` of the embedded PFS server during a 300 MiB upload")
def test_embedded_server_killed_during_a_large_upload(appliance_factory, data_volume, outcome):
    """The embedded server dies mid-upload: after supervisord restarts it the branch is at its old
    head, no half file shows, and the appliance still labels and commits."""
    app = appliance_factory(volume=data_volume).wait_healthy()
    client = sdk_client(app.pachd_address)
    put_source_files(client)
    api = app.api()
    project, target, tasks, annotations = import_and_label(api, client)
    old_head = head(client, "images")
    old_files = files_at(client, "images@master:/")
    data = Stream(300 << 20)
    failure = []

    def upload():
        from pachyderm_sdk.api import pfs

        uploader = sdk_client(app.pachd_address)
        try:
            uploader.pfs.put_file_from_file(commit=pfs.Commit.from_uri("images@master"), path="/big.bin", file=data)
        except Exception as exc:  # noqa: BLE001 - the server dies under it
            failure.append(exc)

    def stored() -> int:
        rc, out = app.exec("du", "-sb", "/data/pfs")
        assert rc == 0, out
        return int(out.split()[0])

    empty = stored()
    worker = threading.Thread(target=upload)
    worker.start()
    arrived = wait_for(lambda: (n := stored() - empty) > (30 << 20) and n, "upload bytes arriving",
                       timeout=180, every=0.1)
    old_pid = kill9(app, "pfs-server")
    worker.join(120)
    assert not worker.is_alive() and failure, "the upload went on although the server was killed"
    new_pid = wait_restarted(app, "pfs-server", old_pid)
    client = sdk_client(app.pachd_address)
    assert head(client, "images") == old_head
    assert files_at(client, "images@master:/") == old_files, "a half upload shows on the branch"

    extra = annotate(api, tasks[3])
    before = {c.commit.id for c in commits(client, "labels")}
    sync(api, target)
    new = one_new_commit(client, "labels", before)
    assert new_files_of(client, "labels", new) == label_files(annotations + [extra])
    checked = check_every_label(api, client, project)
    outcome(f"killed pid {old_pid} with {arrived >> 20} MiB of 300 received; supervisord restarted it "
            f"(pid {new_pid}); images@master still at its old head, no /big.bin; the appliance then "
            f"labeled and synced 1 commit; {checked} labels read back through the SDK")


@pytest.mark.reliability("Fault", "network between appliance and cluster cut and restored "
                                  "(`docker network disconnect/connect`)")
def test_network_cut_and_restored(appliance_factory, test_network, front_network, docker_client, outcome):
    """The cluster network goes away: the Sync fails with a reason instead of hanging, nothing is
    committed, the labels stay staged; once reconnected the next Sync commits all of them once."""
    pachd, client = remote_cluster(appliance_factory, test_network)
    put_source_files(client)
    app = appliance_factory(network=front_network.name, config_json=cluster_config(pachd), ports=("8080/tcp",))
    cluster_net = docker_client.networks.get(test_network)
    cluster_net.connect(app.container)
    app.wait_healthy()
    api = app.api()
    project, target, tasks, annotations = import_and_label(api, client)
    before = {c.commit.id for c in commits(client, "labels")}
    old_head = head(client, "labels")

    cluster_net.disconnect(app.container)
    api = app.api()  # the published port may move to the remaining network
    started = time.monotonic()
    failed = sync(api, target, want="failed", timeout=300)
    took = time.monotonic() - started
    reason = reason_of(failed)
    assert "unreachable" in reason and pachd.name in reason, reason
    assert head(client, "labels") == old_head
    assert {c.commit.id for c in commits(client, "labels")} == before
    staged = staged_labels(app)
    assert sorted(staged.values()) == sorted(a["id"] for a in annotations), staged
    late = annotate(api, tasks[3])

    cluster_net.connect(app.container)
    api = app.api()
    done = sync(api, target)
    new = one_new_commit(client, "labels", before)
    assert new_files_of(client, "labels", new) == label_files(annotations + [late])
    assert not reason_of(done) and done["last_commit"] == new.commit.id, done
    checked = check_every_label(api, client, project)
    outcome(f"disconnected: Sync failed after {took:.0f}s, card {reason.splitlines()[0]!r}; 0 commits, head "
            f"unchanged; {len(staged)} staged labels kept (+1 made while cut); reconnected: next Sync = 1 "
            f"commit with {checked} labels, all read back through the SDK")
