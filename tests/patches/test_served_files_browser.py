"""A file with script in a Source repo cannot run it on Label Studio's origin: real Chromium, signed
in as an annotator of the project's organization, opens the data URLs of an HTML page and of an SVG
image that both try to change the page's title, set a global and call a beacon; neither runs, while
an image task and the SVG itself still show in the labeling view. Real Label Studio (with the
Pachyderm app), mount server and embedded PFS server."""
import subprocess
import uuid

import pytest
from pachyderm_sdk.api import pfs
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from plugins.browser import hostile_files, image_shown
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


def sign_in(driver, url):
    driver.delete_all_cookies()
    driver.get(url + "/user/login/")
    wait = WebDriverWait(driver, WAIT)
    wait.until(lambda d: d.find_elements(By.NAME, "email"), "no login form")
    driver.find_element(By.NAME, "email").send_keys(ANNOTATOR)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
    wait.until(lambda d: "/user/login" not in d.current_url, "the annotator could not sign in")


def test_files_with_script_never_run_it_and_images_still_show(wizard_labelstudio, shared_pfs_server, chromium,
                                                              beacon, screenshots):
    ls, driver = wizard_labelstudio, chromium
    pach = shared_pfs_server.client()
    repo = f"hostile-{uuid.uuid4().hex[:8]}"
    pach.pfs.create_repo(repo=pfs.Repo.from_uri(repo))
    with pach.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@master")) as commit:
        for path, data in hostile_files(beacon.server_address[1]).items():
            commit.put_file_from_bytes(path=path, data=data)
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
            beacon.wait_for_calls()
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
