"""Fixtures for the frontend patch: pristine copies of the pinned bundle, never the venv's own files."""
import hashlib
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
APPLY = ROOT / "patches" / "apply_frontend.py"
BUNDLE_DIR = pathlib.Path("web", "dist", "apps", "labelstudio")
# label-studio==1.23.2 from PyPI, as shipped: the patch is written against exactly these bytes.
PINNED_SHA256 = {
    "main.js": "a92a1e9cb754dcbb380c7209ddd022a9c2fc876f760c1a1b65394e7df54f20b4",
    "main.js.map": "3fa3d2fd075e250de031d4ba5bd053fc787d727fa12c6990f93d228a7a1f6fc9",
}


def load_apply_module():
    spec = importlib.util.spec_from_file_location("apply_frontend", APPLY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_apply(*args) -> subprocess.CompletedProcess:
    """The script as the image build runs it: a separate interpreter, real exit code."""
    return subprocess.run([sys.executable, str(APPLY), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def installed_package_dir() -> pathlib.Path:
    return load_apply_module().default_package_dir()


@pytest.fixture(scope="session")
def installed_web_dir(installed_package_dir) -> pathlib.Path:
    """site-packages/web: pip installs it beside the label_studio package."""
    bundle = load_apply_module().locate_bundle(installed_package_dir)
    return bundle.parents[3]


@pytest.fixture(scope="session")
def pristine_root(tmp_path_factory, installed_web_dir) -> pathlib.Path:
    """The pinned bundle and map as PyPI ships them, whether or not the venv was patched already."""
    root = tmp_path_factory.mktemp("pristine")
    (root / BUNDLE_DIR).mkdir(parents=True)
    for name in PINNED_SHA256:
        shutil.copy2(installed_web_dir.parent / BUNDLE_DIR / name, root / BUNDLE_DIR / name)
    result = run_apply("--revert", root)
    assert result.returncode == 0, result.stderr
    for name, digest in PINNED_SHA256.items():
        assert sha256(root / BUNDLE_DIR / name) == digest, f"{name} is not the pinned 1.23.2 file"
    return root


@pytest.fixture
def bundle_root(tmp_path, pristine_root) -> pathlib.Path:
    """A fresh pristine copy a test may patch or break."""
    shutil.copytree(pristine_root / "web", tmp_path / "web")
    return tmp_path


@pytest.fixture
def bundle(bundle_root) -> pathlib.Path:
    return bundle_root / BUNDLE_DIR / "main.js"


# --- A real Label Studio serving a patched copy of the bundle, and a real Chromium ---------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000"]


@pytest.fixture(scope="session")
def patched_site(tmp_path_factory, installed_package_dir, installed_web_dir) -> pathlib.Path:
    """A folder to put first on Python's path: `label_studio` linked to the installed package,
    `web/` a patched copy. Label Studio finds its bundle at `core/../../web` from the package path
    it was imported by, so it serves this copy and the venv's own files stay untouched."""
    site = tmp_path_factory.mktemp("site")
    (site / "label_studio").symlink_to(installed_package_dir, target_is_directory=True)
    shutil.copytree(installed_web_dir, site / "web")
    result = run_apply(site / "label_studio")
    assert result.returncode == 0, result.stderr
    return site


def start_patched_labelstudio(root: pathlib.Path, mount_server, patched_site: pathlib.Path, **extra_env):
    """Label Studio with the Pachyderm storage app and mount server, serving the patched bundle."""
    import plugins.labelstudio
    from plugins.labelstudio import LabelStudio

    site_package = str(patched_site / "label_studio")

    class PatchedBundleLabelStudio(LabelStudio):
        """Imports `label_studio` only through the linked path: the same folder under two names
        on sys.path makes Django refuse Label Studio's namespace-package apps."""

        def env(self) -> dict:
            env = super().env()  # its PYTHONPATH: the pachstudio package under test
            return {**env, "PYTHONPATH": os.pathsep.join([str(patched_site), env["PYTHONPATH"]]), **extra_env}

        def start(self):
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(plugins.labelstudio, "label_studio_dir", lambda: site_package)
                return super().start()

    ls = PatchedBundleLabelStudio(root, mount_server.api, pathlib.Path(mount_server.mount_dir))
    ls.start()
    served = ls.session.get(ls.url + "/react-app/main.js", timeout=60)
    if not (served.ok and "pachstudio:pachyderm-provider" in served.text):
        ls.stop()
        raise AssertionError("Label Studio serves an unpatched bundle")
    return ls


@pytest.fixture(scope="session")
def wizard_labelstudio(tmp_path_factory, ls_mount_server, patched_site):
    ls = start_patched_labelstudio(tmp_path_factory.mktemp("wizard-ls"), ls_mount_server, patched_site)
    yield ls
    ls.stop()


@pytest.fixture(scope="session")
def legacy_form_labelstudio(tmp_path_factory, ls_mount_server, patched_site):
    """The same, with the wizard off: any Sentry environment but `opensource` gives the older
    form, whose types and fields come from the backend (`/api/storages/types`, `.../form`)."""
    ls = start_patched_labelstudio(tmp_path_factory.mktemp("legacy-ls"), ls_mount_server, patched_site,
                                   FRONTEND_SENTRY_ENVIRONMENT="production",
                                   fflag_feat_bros_193_new_cloud_storage_providers_short="false")
    yield ls
    ls.stop()


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def page(chromium, wizard_labelstudio, screenshots):
    """A logged-in storage page for one module, logged out after it (the wizard tests' session
    logs in on a fresh page); its login accepts a browser the wizard session left signed in."""
    from .storage_page import StoragePage

    page = StoragePage(chromium, wizard_labelstudio, screenshots)
    page.login()
    yield page
    chromium.delete_all_cookies()
