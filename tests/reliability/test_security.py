"""Who gets in: only the published ports answer, nobody signs up without an invite, the cluster
token never shows in an answer or a log, and a Source's files reach only users of its project."""
import json
import re
import socket
import uuid

import grpc
import pytest
import requests
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from plugins.browser import hostile_files, image_shown
from plugins.image import ADMIN, TOKEN, sdk_client
from plugins.labelstudio import login
from plugins.pfs_permissions import CALLS, RANK, Case, build_world, drain, inventory, reset, robot_of, state

from .appliance_steps import (
    BLOB_CONFIG,
    SOURCE,
    TARGET,
    add_source,
    add_target,
    choice_result,
    create_project,
    put_files,
    sync_source,
    sync_target,
)

CANARY = f"pachstudio-canary-token-{uuid.uuid4().hex}"
STRANGER, STRANGER_PASSWORD, STRANGER_TOKEN = "stranger@example.com", "stranger-pass-0123", "stranger-token-0123456789"

# A second user with an organization of their own, made the way an admin would on the command
# line (Label Studio's signup is closed): Django inside the running container.
MAKE_STRANGER = f"""
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pachstudio.labelstudio.settings")
import django
django.setup()
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
user = User.objects.create_user(email={STRANGER!r}, password={STRANGER_PASSWORD!r})
org = Organization.create_organization(created_by=user, title="Other team", legacy_api_tokens_enabled=True)
user.active_organization = org
user.save(update_fields=["active_organization"])
Token.objects.filter(user=user).delete()
Token.objects.create(user=user, key={STRANGER_TOKEN!r})
print("made", user.id, org.id)
"""


@pytest.fixture(scope="module")
def embedded(module_appliances):
    """The README one-liner with the embedded server's port published on purpose."""
    app = module_appliances(ports=("8080/tcp", "30650/tcp")).wait_healthy()
    return app


@pytest.fixture(scope="module")
def remote(module_appliances, module_network):
    """A cluster container and an appliance whose config.json context carries a session token."""
    cluster = module_appliances(command=["pfs-server"], network=module_network, fuse=False,
                                ports=("30650/tcp",)).wait_healthy()
    config = {"v2": {"active_context": "lab", "contexts": {"lab": {
        "pachd_address": f"grpc://{cluster.name}:30650", "session_token": CANARY, "project": "default"}}}}
    app = module_appliances(network=module_network, config_json=config, ports=("8080/tcp",)).wait_healthy()
    return cluster, app


def listening_ports(app) -> dict:
    """{port: [addresses]} of every TCP socket listening in the container's network namespace."""
    rc, out = app.exec("cat", "/proc/net/tcp", "/proc/net/tcp6")
    assert rc == 0, out
    ports = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A" or ":" not in fields[1]:  # 0A = LISTEN
            continue
        address, port = fields[1].rsplit(":", 1)
        ports.setdefault(int(port, 16), []).append(address)
    return ports


def loopback(address: str) -> bool:
    """127.0.0.0/8 (Docker's resolver listens on 127.0.0.11), ::1, or 127.x mapped into IPv6
    (/proc/net writes each 32-bit word in host order, so 127 is the last byte of its word)."""
    if len(address) == 8:
        return address.endswith("7F")
    return address == "00000000000000000000000001000000" or (
        address.startswith("0000000000000000FFFF0000") and address.endswith("7F"))


def container_ip(app) -> str:
    app.container.reload()
    return next(iter(app.container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]


def connects(host, port) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


@pytest.mark.reliability("Security", "ports that answer from outside the container: {mode}")
@pytest.mark.parametrize("mode", ["embedded server, published on purpose", "remote cluster"])
def test_only_the_appliance_ports_answer(request, outcome, mode):
    """The mount server holds the cluster token and writes under /pfs: it must listen on loopback
    only. From outside, only Label Studio (and the embedded server, when there is one) answer."""
    app = request.getfixturevalue("embedded") if mode.startswith("embedded") else request.getfixturevalue("remote")[1]
    expected = {8080, 30650} if mode.startswith("embedded") else {8080}
    ports = listening_ports(app)
    outside = {p for p, addrs in ports.items() if not all(loopback(a) for a in addrs)}
    loopback_only = {p for p in ports if p not in outside}
    outcome(f"listening for other hosts: {sorted(outside)}; loopback only: {sorted(loopback_only)}")
    assert 9002 in loopback_only, f"the mount server should listen on 127.0.0.1:9002: {ports}"
    assert outside == expected
    ip = container_ip(app)
    reach = {port: connects(ip, port) for port in sorted(expected | {9002})}
    outcome("from the host to the container's address: "
            + ", ".join(f"{p} {'answers' if ok else 'refused'}" for p, ok in reach.items()))
    assert reach == {port: port != 9002 for port in reach}
    rc, _ = app.exec("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9002")
    assert rc == 0, "inside the container the mount server answers on loopback"


@pytest.mark.reliability("Security", "signup without an invite, with a wrong invite, with the admin's invite")
def test_signup_needs_the_invite(embedded, outcome):
    """Label Studio's signup page is open by default; the appliance closes it to all but invitees."""
    api = embedded.api()

    def signup(email, token=None):
        http = requests.Session()
        page = "/user/signup/" + (f"?token={token}" if token else "")
        http.get(embedded.url + page, timeout=30)
        return http.post(embedded.url + page, data={"email": email, "password": "intruder-pass-1",
                         "csrfmiddlewaretoken": http.cookies.get("csrftoken")},
                         headers={"Referer": embedded.url + page}, timeout=60, allow_redirects=False)

    def emails():
        users = api.call("GET", "/api/users/")
        return {u["email"] for u in (users["results"] if isinstance(users, dict) else users)}

    before = emails()
    plain = signup("intruder@example.com")
    wrong = signup("intruder2@example.com", token="not-the-invite-token")
    outcome(f"no invite: {plain.status_code}; wrong invite token: {wrong.status_code}")
    assert plain.status_code == 403 and wrong.status_code == 403
    assert not {"intruder@example.com", "intruder2@example.com"} & emails()
    invite = api.call("GET", "/api/invite")["token"]
    invited = signup("invitee@example.com", token=invite)
    outcome(f"the admin's invite link: {invited.status_code}, user created")
    assert invited.status_code == 302 and "invitee@example.com" in emails() - before


@pytest.fixture(scope="module")
def blob_source(embedded):
    """A project whose Source serves files through data URLs, and a stranger in another organization."""
    client = sdk_client(embedded.pachd_address)
    put_files(client, "private", {"docs/a.txt": "private words"})
    api = embedded.api()
    project = create_project(api, "private", BLOB_CONFIG)
    source = add_source(api, project["id"], "private", use_blob_urls=True)
    sync_source(api, source["id"])
    task = api.call("GET", f"/api/tasks/?project={project['id']}")["tasks"][0]
    rc, out = embedded.exec("python", "-c", MAKE_STRANGER)
    assert rc == 0 and "made" in out, out
    return project, source, task["data"]["url"]



@pytest.mark.reliability("Security", "a Source's data URL without login, with a wrong token, as a user of "
                                     "another organization (token and session), as the project's user")
def test_data_urls_serve_only_the_projects_users(embedded, blob_source, outcome):
    project, source, url = blob_source
    assert url.startswith("/data/pachyderm/"), url
    full = embedded.url + url
    answers = {
        "no login": requests.get(full, timeout=60, allow_redirects=False),
        "wrong token": requests.get(full, headers={"Authorization": "Token wrong-token-000000"}, timeout=60,
                                    allow_redirects=False),
        "stranger's token": requests.get(full, headers={"Authorization": f"Token {STRANGER_TOKEN}"}, timeout=60,
                                         allow_redirects=False),
        "stranger's session": login(embedded, STRANGER, STRANGER_PASSWORD).get(full, timeout=60,
                                                                               allow_redirects=False),
        "project user's token": requests.get(full, headers={"Authorization": f"Token {TOKEN}"}, timeout=60),
    }
    outcome(", ".join(f"{who}: {r.status_code}" for who, r in answers.items()))
    for who in ("no login", "wrong token"):
        assert answers[who].status_code in (401, 403), who
    for who in ("stranger's token", "stranger's session"):
        assert answers[who].status_code in (403, 404), (who, answers[who].text[:300])
    for who, r in answers.items():
        if who != "project user's token":
            assert b"private words" not in r.content, who
    assert answers["project user's token"].status_code == 200
    assert answers["project user's token"].content == b"private words"


@pytest.mark.reliability("Security", "a user of another organization reads, syncs and adds storages of a project "
                                     "not theirs")
def test_storage_api_refuses_other_organizations(embedded, blob_source, outcome):
    """The stranger must not read the storage settings, run its syncs or add a Target that would
    copy the project's labels into a repo of their choosing."""
    project, source, _ = blob_source
    stranger = requests.Session()
    stranger.headers["Authorization"] = f"Token {STRANGER_TOKEN}"
    base = embedded.url
    answers = {
        "list Sources": stranger.get(f"{base}{SOURCE}?project={project['id']}", timeout=60),
        "read the Source": stranger.get(f"{base}{SOURCE}/{source['id']}", timeout=60),
        "change the Source": stranger.patch(f"{base}{SOURCE}/{source['id']}", json={"title": "mine"}, timeout=60),
        "sync the Source": stranger.post(f"{base}{SOURCE}/{source['id']}/sync", timeout=60),
        "add a Target": stranger.post(f"{base}{TARGET}", json={
            "project": project["id"], "title": "exfiltrate", "pach_project": "default", "repo": "private",
            "branch": "stolen", "prefix": "", "file_format": "annotation"}, timeout=60),
        "list Targets": stranger.get(f"{base}{TARGET}?project={project['id']}", timeout=60),
        "delete the Source": stranger.delete(f"{base}{SOURCE}/{source['id']}", timeout=60),
    }
    outcome(", ".join(f"{what}: {r.status_code}" for what, r in answers.items()))
    for what, r in answers.items():
        assert r.status_code in (403, 404), (what, r.status_code, r.text[:300])
    api = embedded.api()
    assert api.call("GET", f"{SOURCE}/{source['id']}")["title"] == source["title"]
    assert api.call("GET", f"{TARGET}?project={project['id']}") == []
    outcome("the Source is unchanged and no Target was added")


def _grep_container(app, needle: str) -> str:
    """Files under /data, /var/log, /tmp, /run and /etc, and every process's command line and
    environment, that contain `needle` (the mounted config.json itself is not among them)."""
    # The needle goes in halves and is joined into a file outside the searched folders, so no
    # command line of the search itself holds it.
    script = ('printf "%s%s" "$1" "$2" > /dev/shm/needle; '
              'grep -rl --binary-files=text -F -f /dev/shm/needle /data /var/log /tmp /run /etc 2>/dev/null; '
              'for p in /proc/[0-9]*; do cat $p/cmdline $p/environ 2>/dev/null | grep -q -a -F -f /dev/shm/needle '
              '&& echo $p; done; rm -f /dev/shm/needle; true')
    half = len(needle) // 2
    rc, out = app.exec("sh", "-c", script, "grep", needle[:half], needle[half:])
    assert rc == 0, out
    return out.strip()


@pytest.mark.reliability("Security", "a cluster token in config.json: every API answer, the mount server's "
                                     "answers, docker logs, files under /data /var/log /tmp /run /etc, process "
                                     "command lines, across a sync, a label, a Target Sync and a cluster outage")
def test_the_cluster_token_never_leaks(remote, outcome):
    cluster, app = remote
    client = sdk_client(cluster.pachd_address)
    put_files(client, "texts", {f"tasks/{i}.json": json.dumps({"text": f"text {i}"}) for i in range(3)})
    client.pfs.create_repo(repo=pfs.Repo.from_uri("labels"))
    api = app.api()
    bodies = []
    original = api.call

    def call(method, path, expect=(200, 201, 204), **kwargs):
        r = api.http.request(method, api.url + path, timeout=300, **kwargs)
        bodies.append(f"{method} {path} -> {r.status_code}: {r.text}")
        assert r.status_code in expect, bodies[-1][:2000]
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else r

    api.call = call
    project = create_project(api, "token check")
    source = add_source(api, project["id"], "texts", prefix="tasks")
    sync_source(api, source["id"])
    api.call("POST", SOURCE, expect=(400,), json={"project": project["id"], "title": "x", "repo": "no-such-repo"})
    target = add_target(api, project["id"], "labels")
    tasks = api.call("GET", f"/api/tasks/?project={project['id']}")["tasks"]
    for task in tasks:
        api.call("POST", f"/api/tasks/{task['id']}/annotations/", json={"result": choice_result("cat")})
    sync_target(api, target["id"])
    # The cluster goes away: the failure messages (storage cards, logs) must not carry the token.
    cluster.container.stop(timeout=10)
    first = api.call("GET", f"/api/tasks/{tasks[0]['id']}/annotations/")[0]
    api.call("PATCH", f"/api/annotations/{first['id']}/", json={"result": choice_result("dog")})
    failed = sync_target(api, target["id"], expect=("failed",))
    api.call("POST", f"{SOURCE}/validate", expect=(400,), json={"project": project["id"], "title": "y",
                                                                 "repo": "texts"})
    cluster.container.start()
    cluster.wait_healthy()
    synced = sync_target(api, target["id"], timeout=300)
    for path in (f"{SOURCE}?project={project['id']}", f"{TARGET}?project={project['id']}",
                 f"/api/projects/{project['id']}/", "/api/current-user/whoami"):
        api.call("GET", path)
    api.call = original
    mount_answers = []
    for path in ("/config", "/projects", "/repos", "/mounts", "/stats", "/openapi.json"):
        rc, out = app.exec("python", "-c", f"import urllib.request; print(urllib.request.urlopen("
                                           f"'http://127.0.0.1:9002{path}').read().decode())")
        assert rc == 0, out
        mount_answers.append(out)
    outcome(f"{len(bodies)} Label Studio answers and {len(mount_answers)} mount-server answers read; a Target Sync "
            f"during the outage failed ('{(failed.get('traceback') or '').splitlines()[0][:160]}'), the next one made "
            f"commit {synced.get('last_commit', '')[:8]}")
    assert "unreachable" in (failed.get("traceback") or "") and "Traceback" not in failed["traceback"], failed
    assert json.loads(mount_answers[0])["cluster_status"] in ("AUTH_ENABLED", "AUTH_DISABLED")
    leaks = [b[:200] for b in bodies + mount_answers if CANARY in b]
    for name, logs in (("appliance", app.logs()), ("cluster", cluster.logs())):
        if CANARY in logs:
            leaks.append(f"docker logs of the {name}")
    found = _grep_container(app, CANARY)
    if found:
        leaks.append(f"files/processes: {found}")
    outcome(f"token found in: {leaks or 'nothing'}")
    assert not leaks
    # The search can find what it looks for: the token is in the mounted config and nowhere else.
    rc, out = app.exec("grep", "-c", CANARY, "/root/.pachyderm/config.json")
    assert rc == 0 and out.strip() == "1"


@pytest.fixture(scope="module")
def embedded_with_auth(module_appliances):
    """The appliance with its embedded server's auth on (`-e PACHSTUDIO_PFS_AUTH=1`) and its port
    published; the root token as its first start prints it."""
    app = module_appliances(ports=("8080/tcp", "30650/tcp"), env={"PACHSTUDIO_PFS_AUTH": "1"}).wait_healthy()
    [token] = re.findall(r"root token: ([0-9a-f]{32})", app.logs())
    return app, token


@pytest.mark.reliability("Security", "a robot token with no role makes every PFS, PPS, transaction and admin call "
                                     "that reads or changes what it has no role on (embedded server, auth on)")
def test_a_robot_with_no_role_is_refused_every_call(embedded_with_auth, outcome):
    """The catalogue of tests/plugins/pfs_permissions.py, as `robot:none`, on the image: each call
    pachd refuses a token without a role is refused in pachd's words, or answers without what the
    robot may not see, and changes nothing."""
    app, token = embedded_with_auth
    root = sdk_client(app.pachd_address, auth_token=token)
    world = build_world(root, app.pachd_address, token)
    robot = Client.from_pachd_address(app.pachd_address,
                                      auth_token=root.auth.get_robot_token(robot=robot_of("none")).token)
    kept = inventory(root)
    allowed = [c.name for c in CALLS if RANK[c.need] == RANK["none"]]
    answers: dict[str, list] = {}
    for call in CALLS:
        if call.name in allowed:
            continue
        case = Case("none", world)
        call.setup(root, case)
        refused = call.refused(case)
        before = state(root, case)
        if refused.code is not None:
            with pytest.raises(grpc.RpcError) as e:
                drain(call.run(robot, case))
            assert (e.value.code(), e.value.details()) == (refused.code, refused.text), call.name
            answers.setdefault(e.value.code().name, []).append(call.name)
        else:
            assert refused.hidden(drain(call.run(robot, case)), case), call.name
            answers.setdefault("answered leaving out what it may not see or delete", []).append(call.name)
        assert state(root, case) == before, f"{call.name} changed something"
        reset(root, kept)
    denied_by_api = {}
    for name in answers["PERMISSION_DENIED"]:
        api = name.split(".")[0].split(":")[0]
        denied_by_api[api] = denied_by_api.get(api, 0) + 1
    outcome(f"{sum(len(v) for v in answers.values())} calls tried, every one refused: "
            f"{len(answers['PERMISSION_DENIED'])} PERMISSION_DENIED in pachd's words ("
            + ", ".join(f"{api} {n}" for api, n in denied_by_api.items()) + "), "
            + "; ".join(f"{len(names)} {what} ({', '.join(names)})" for what, names in answers.items()
                        if what != "PERMISSION_DENIED"))
    outcome("after each call projects, repos, branches, commits, files, role bindings, pipelines, jobs and "
            "transactions as before")
    outcome(f"not tried, as pachd lets every token make them: {', '.join(allowed)}")
    assert answers["PERMISSION_DENIED"]


IMAGE_CONFIG = ('<View><Image name="image" value="$url"/><Choices name="label" toName="image">'
                '<Choice value="cat"/><Choice value="dog"/></Choices></View>')
ANNOTATOR, ANNOTATOR_PASSWORD = "annotator@example.com", "annotator-pass-0123"
# An annotator in the first user's organization, made the way an admin would on the command line.
MAKE_ANNOTATOR = f"""
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pachstudio.labelstudio.settings")
import django
django.setup()
from users.models import User
admin = User.objects.get(email={ADMIN!r})
user = User.objects.create_user(email={ANNOTATOR!r}, password={ANNOTATOR_PASSWORD!r})
admin.active_organization.add_user(user)
user.active_organization = admin.active_organization
user.save(update_fields=["active_organization"])
print("made", user.id)
"""


@pytest.mark.reliability("Hostile input", "an HTML page and an SVG image with script in a Source repo, opened by "
                                          "an annotator in Chromium; the image tasks in the labeling view")
def test_files_with_script_run_none_in_an_annotators_session(embedded, page, beacon, outcome):
    client = sdk_client(embedded.pachd_address)
    put_files(client, "hostile", hostile_files(beacon.server_address[1]))
    api = embedded.api()
    project = create_project(api, "hostile files", IMAGE_CONFIG)
    source = add_source(api, project["id"], "hostile", use_blob_urls=True)
    sync_source(api, source["id"])
    tasks = {t["storage_filename"]: t for t in api.call("GET", f"/api/tasks/?project={project['id']}")["tasks"]}
    urls = {path: t["data"]["url"] for path, t in tasks.items()}
    rc, out = embedded.exec("python", "-c", MAKE_ANNOTATOR)
    assert rc == 0 and "made" in out, out

    page.open(embedded.url + "/user/login/")
    page.type("email", ANNOTATOR)
    page.type("password", ANNOTATOR_PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.until(lambda: "/user/login" not in page.driver.current_url, "the annotator could not sign in")
    for path in ("hostile/page.html", "hostile/vector.svg"):
        answer = api.http.head(embedded.url + urls[path], timeout=60)
        page.open("about:blank")
        page.open(embedded.url + urls[path])
        calls = list(beacon.wait_for_calls())
        title = page.driver.title
        page.shot(path.replace("/", "-"))
        outcome(f"{path}: {answer.headers['Content-Type']}, {answer.headers['Content-Disposition'].split(';')[0]}, "
                f"CSP {answer.headers.get('Content-Security-Policy')}, {answer.headers['X-Content-Type-Options']}; "
                f"opened: title {title!r}, {len(calls)} beacon calls")
        assert title != "pwned" and not calls, (path, title, calls)
    assert page.driver.title == "vector"  # the SVG itself was shown
    for path in ("images/cat.png", "hostile/vector.svg"):
        page.open(f"{embedded.url}/projects/{project['id']}/data?task={tasks[path]['id']}")
        page.until(lambda p=path: image_shown(page.driver, urls[p]), f"{path} never showed in the labeling view")
        page.shot(f"labeling-{path.replace('/', '-')}")
    outcome(f"labeling view: images/cat.png and hostile/vector.svg shown; beacon calls in all: {len(beacon.hits)}")
    assert not beacon.hits
