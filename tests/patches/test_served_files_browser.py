"""A file with script in a Source repo cannot run it on Label Studio's origin: real Chromium, signed
in as an annotator of the project's organization, opens the data URLs of an HTML page and of an SVG
image that both try to change the page's title, set a global and call a beacon; neither runs, while
an image task and the SVG itself still show in the labeling view. Real Label Studio (with the
Pachyderm app), mount server and embedded PFS server."""
import http.server
import struct
import subprocess
import threading
import time
import uuid
import zlib

import pytest
from pachyderm_sdk.api import pfs
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from plugins.labelstudio import VENV_BIN

pytestmark = pytest.mark.browser

WAIT = 90
ANNOTATOR, PASSWORD = "served-annotator@example.com", "annotator-pass-0123"
IMAGE_CONFIG = ('<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
                '<Choice value="cat"/><Choice value="dog"/></Choices></View>')

# An annotator in the admin's organization, made the way an admin would on the command line
# (signup is closed).
MAKE_ANNOTATOR = f"""
import django
django.setup()
from users.models import User
admin = User.objects.get(email="admin@example.com")
user = User.objects.filter(email={ANNOTATOR!r}).first() or User.objects.create_user(
    email={ANNOTATOR!r}, password={PASSWORD!r})
admin.active_organization.add_user(user)
user.active_organization = admin.active_organization
user.save()
print("made")
"""


class Beacon(http.server.ThreadingHTTPServer):
    """A server on loopback the hostile files call when their script runs: every hit is kept."""

    def __init__(self):
        self.hits: list[str] = []
        beacon = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                beacon.hits.append(self.path)
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def hostile_script(port: int, name: str) -> str:
    return (f"document.title = 'pwned'; window.pwned = true; new Image().src = 'http://127.0.0.1:{port}/{name}';"
            f" fetch('http://127.0.0.1:{port}/{name}-fetch');")


def png(width: int, height: int) -> bytes:
    """A red PNG, written out (no imaging library needed)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def beacon():
    server = Beacon()
    yield server
    server.shutdown()
    server.server_close()


def sign_in(driver, url):
    driver.delete_all_cookies()
    driver.get(url + "/user/login/")
    wait = WebDriverWait(driver, WAIT)
    wait.until(lambda d: d.find_elements(By.NAME, "email"), "no login form")
    driver.find_element(By.NAME, "email").send_keys(ANNOTATOR)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
    wait.until(lambda d: "/user/login" not in d.current_url, "the annotator could not sign in")


def wait_for_calls(beacon, seconds=3.0):
    """A script runs by the page's load event; its beacon call gets a few seconds more to arrive."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not beacon.hits:
        time.sleep(0.1)


def image_shown(driver, url: str) -> bool:
    """An <img> of the page shows `url`, decoded (naturalWidth > 0)."""
    return driver.execute_script(
        "return Array.from(document.images).some(i => i.src.endsWith(arguments[0]) && i.complete"
        " && i.naturalWidth > 0)", url)


def test_files_with_script_never_run_it_and_images_still_show(wizard_labelstudio, shared_pfs_server, chromium,
                                                              beacon, screenshots):
    ls, driver = wizard_labelstudio, chromium
    pach = shared_pfs_server.client()
    repo = f"hostile-{uuid.uuid4().hex[:8]}"
    pach.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    port = beacon.server_address[1]
    page = (f"<!doctype html><html><head><title>page</title><script>{hostile_script(port, 'html')}</script>"
            "</head><body>a page</body></html>")
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><title>vector</title>'
           f'<rect width="40" height="30" fill="blue"/><script>{hostile_script(port, "svg")}</script></svg>')
    with pach.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as commit:
        commit.put_file_from_bytes(path="hostile/page.html", data=page.encode())
        commit.put_file_from_bytes(path="hostile/vector.svg", data=svg.encode())
        commit.put_file_from_bytes(path="images/cat.png", data=png(40, 30))
    project = ls.create_project(title=f"hostile {uuid.uuid4().hex[:6]}", label_config=IMAGE_CONFIG)
    source = ls.create_source(project["id"], repo=repo, use_blob_urls=True, recursive_scan=True)
    assert ls.sync(source["id"])["last_sync_count"] == 3
    tasks = {t["data"]["pachyderm_path"]: t for t in ls.tasks(project["id"])}
    urls = {path: t["data"]["image"] for path, t in tasks.items()}
    made = subprocess.run([str(VENV_BIN / "python"), "-c", MAKE_ANNOTATOR], env=ls.env(), cwd=ls.root,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0 and "made" in made.stdout, made.stderr[-3000:]

    sign_in(driver, ls.url)
    try:
        for path, shown_title in (("hostile/page.html", None), ("hostile/vector.svg", "vector")):
            driver.get("about:blank")
            driver.get(ls.url + urls[path])
            wait_for_calls(beacon)
            driver.save_screenshot(str(screenshots / f"opened-{path.replace('/', '-')}.png"))
            assert driver.title != "pwned" and not beacon.hits, (path, driver.title, beacon.hits)
            if shown_title:  # the SVG was opened and shown, its script inert in the sandbox
                assert driver.title == shown_title
        # the labeling view still shows images, the SVG among them, and its script stays inert there
        for path in ("images/cat.png", "hostile/vector.svg"):
            driver.get(f"{ls.url}/projects/{project['id']}/data?task={tasks[path]['id']}")
            WebDriverWait(driver, WAIT, poll_frequency=0.5).until(
                lambda d, p=path: image_shown(d, urls[p]), f"{path} never showed in the labeling view")
            driver.save_screenshot(str(screenshots / f"labeling-{path.replace('/', '-')}.png"))
        assert not beacon.hits and driver.title != "pwned", beacon.hits
    finally:
        driver.delete_all_cookies()  # the next module signs in as its own user
