"""Label Studio under gunicorn on the host, with the Pachyderm storage app, a real mount server
and the embedded PFS server: the whole chain a user drives, session-wide (first start ~25 s).
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests

VENV_BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    from plugins.pfs import free_port as pick  # imported late: pytest rewrites asserts of plugins it loads

    return pick()


def wait_for_port(port, proc, timeout=30.0):
    from plugins.pfs import wait_for_port as wait

    return wait(port, proc, timeout)
TOKEN = 'pachstudio-test-token-0123456789'
# A cluster token the mount server holds; tests assert it never leaks into Label Studio.
CLUSTER_SECRET = 'pach-session-token-must-never-leak-7f3a'


def label_studio_dir() -> str:
    import label_studio

    return os.path.dirname(label_studio.__file__)


def clean_env(**extra) -> dict:
    """The environment of a Label Studio under test: none of the caller's Label Studio or Django
    settings, and PYTHONPATH only the folder of the pachstudio package the tests import (a git
    worktree's, not the editable install's), so the server runs the code under test."""
    import pachstudio

    env = {k: v for k, v in os.environ.items()
           if k not in ('HOST', 'PORT', 'USERNAME', 'DJANGO_SETTINGS_MODULE', 'PYTHONPATH')
           and not k.startswith('LABEL_STUDIO_')}
    env['PYTHONPATH'] = str(pathlib.Path(pachstudio.__file__).resolve().parent.parent)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def session_mount_server(root: pathlib.Path, pachd_address: str):
    """The mount plugin's `MountServer`, started once for the session. Its cluster comes from a
    pachctl config in its HOME holding a session token, so tests can prove the token never leaks."""
    from plugins.mount import MountServer

    config = root / '.pachyderm' / 'config.json'
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({'v2': {'active_context': 'test', 'contexts': {'test': {
        'pachd_address': pachd_address, 'session_token': CLUSTER_SECRET}}}}))
    return MountServer(root, None, env={'PACH_CONTEXT': 'test'}).start(timeout=60)


def template_dir() -> pathlib.Path:
    import hashlib

    import label_studio

    import pachstudio.labelstudio

    migrations = pathlib.Path(pachstudio.labelstudio.__file__).parent / 'migrations'
    digest = hashlib.sha1(label_studio.__version__.encode() + TOKEN.encode())
    for path in sorted(migrations.glob('*.py')):
        digest.update(path.read_bytes())
    return pathlib.Path('/tmp/pachstudio-ls-template') / digest.hexdigest()[:16]


class LabelStudio:
    """A running Label Studio; `.session` carries the token, helpers wrap the storage API."""

    def __init__(self, root: pathlib.Path, mount_api: str, mount_dir):
        self.root = root
        self.data_dir = root / 'ls-data'
        template_dir().parent.mkdir(parents=True, exist_ok=True)
        self.local_root = root / 'local-files'  # for Label Studio's own local-files storage
        self.port = free_port()
        self.token = TOKEN
        self.mount_api = mount_api
        self.mount_dir = pathlib.Path(mount_dir)
        self.log_path = root / 'gunicorn.log'
        self.proc = None
        self.gunicorn_timeout = 120
        self.session = requests.Session()
        self.session.headers['Authorization'] = f'Token {TOKEN}'

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def env(self) -> dict:
        return clean_env(
            DJANGO_SETTINGS_MODULE='pachstudio.labelstudio.settings',
            LABEL_STUDIO_BASE_DATA_DIR=self.data_dir,
            PACHSTUDIO_MOUNT_API=self.mount_api, PACHSTUDIO_MOUNT_DIR=self.mount_dir,
            SENTRY_DSN='', FRONTEND_SENTRY_DSN='', LATEST_VERSION_CHECK='false', COLLECT_ANALYTICS='false',
            LOCAL_FILES_SERVING_ENABLED='true', LOCAL_FILES_DOCUMENT_ROOT=self.local_root,
            LOG_LEVEL='INFO', PYTHONUNBUFFERED='1',
        )

    def init_data_dir(self, log):
        """`label-studio init` (migrations, first user, token) takes 20-150 s; an initialised data
        dir is kept per Label Studio version and app migrations and copied on later runs."""
        template = template_dir()
        if template.exists():
            shutil.copytree(template, self.data_dir, dirs_exist_ok=True)
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(VENV_BIN / 'label-studio'), 'init', '--username', 'admin@example.com', '--password', 'pass1234',
             '--user-token', TOKEN, '--enable-legacy-api-token', '-q'],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, check=True, cwd=self.root, timeout=600)
        partial = template.with_name(template.name + f'.{os.getpid()}')
        shutil.copytree(self.data_dir, partial)
        try:
            partial.rename(template)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)

    def start(self):
        self.local_root.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, 'ab')
        self.init_data_dir(log)
        self.proc = subprocess.Popen(
            [str(VENV_BIN / 'gunicorn'), '--pythonpath', label_studio_dir(), '--bind', f'127.0.0.1:{self.port}',
             '--workers', '1', '--threads', '8', '--timeout', str(self.gunicorn_timeout),
             'label_studio.core.wsgi:application'],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        wait_for_port(self.port, self.proc, timeout=120)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + '/health', timeout=5).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError('Label Studio never answered /health')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors='replace') if self.log_path.exists() else ''

    # --- REST helpers ----------------------------------------------------------------------
    def api(self, method, path, expect=None, **kwargs):
        response = self.session.request(method, self.url + path, timeout=self.gunicorn_timeout + 10, **kwargs)
        if expect is not None:
            assert response.status_code == expect, f'{method} {path}: {response.status_code} {response.text[:2000]}'
        return response

    def create_project(self, title=None, label_config=None) -> dict:
        body = {'title': title or f'p-{uuid.uuid4().hex[:6]}'}
        if label_config:
            body['label_config'] = label_config
        return self.api('POST', '/api/projects', json=body, expect=201).json()

    def create_source(self, project_id, **fields) -> dict:
        return self.api('POST', '/api/storages/pachyderm', json={'project': project_id, **fields}, expect=201).json()

    def create_target(self, project_id, **fields) -> dict:
        return self.api('POST', '/api/storages/export/pachyderm', json={'project': project_id, **fields},
                        expect=201).json()

    def storage(self, storage_id, target=False) -> dict:
        kind = 'export/pachyderm' if target else 'pachyderm'
        return self.api('GET', f'/api/storages/{kind}/{storage_id}', expect=200).json()

    def wait_storage(self, storage_id, target=False, timeout=300) -> dict:
        deadline = time.monotonic() + timeout
        pause = 0.02  # short jobs are seen at once; long ones are not slowed by a stream of polls
        while True:
            storage = self.storage(storage_id, target)
            if storage['status'] in ('completed', 'completed_with_errors', 'failed'):
                return storage
            if time.monotonic() > deadline:
                raise TimeoutError(f'storage {storage_id} still {storage["status"]}: {storage}')
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)

    def sync(self, storage_id, target=False, timeout=300) -> dict:
        kind = 'export/pachyderm' if target else 'pachyderm'
        self.api('POST', f'/api/storages/{kind}/{storage_id}/sync', expect=200)
        return self.wait_storage(storage_id, target, timeout)

    def tasks(self, project_id) -> list:
        tasks, page = [], 1
        while True:
            r = self.api('GET', f'/api/tasks?project={project_id}&page={page}&page_size=1000&fields=all')
            if r.status_code == 404:
                return tasks
            assert r.status_code == 200, r.text
            chunk = r.json()['tasks']
            tasks += chunk
            if len(chunk) < 1000:
                return tasks
            page += 1

    def annotate(self, task_id, label='cat') -> dict:
        result = [{'from_name': 'choice', 'to_name': 'text', 'type': 'choices', 'value': {'choices': [label]}}]
        return self.api('POST', f'/api/tasks/{task_id}/annotations', json={'result': result}, expect=201).json()


@pytest.fixture(scope='session')
def ls_mount_server(tmp_path_factory, shared_pfs_server):
    """Session-wide mount server on the shared PFS server (the `mount_server` fixture is per test)."""
    server = session_mount_server(tmp_path_factory.mktemp('ls-mount'), shared_pfs_server.address)
    yield server
    server.stop()


@pytest.fixture(scope='session')
def labelstudio(tmp_path_factory, ls_mount_server):
    ls = LabelStudio(tmp_path_factory.mktemp('labelstudio'), ls_mount_server.api,
                     pathlib.Path(ls_mount_server.mount_dir))
    ls.start()
    yield ls
    ls.stop()


@pytest.fixture
def ls_pach(shared_pfs_server):
    """An SDK client on the cluster behind Label Studio's mount server."""
    return shared_pfs_server.client()


def unique(name: str) -> str:
    return f'{name}-{uuid.uuid4().hex[:8]}'


def login(app, email, password):
    """A requests session signed in through Label Studio's login form, as a browser is (`app`:
    anything with a `url`, the in-process Label Studio or the image)."""
    http = requests.Session()
    http.get(app.url + "/user/login/", timeout=30)
    r = http.post(app.url + "/user/login/", data={"email": email, "password": password,
                  "csrfmiddlewaretoken": http.cookies.get("csrftoken")},
                  headers={"Referer": app.url + "/user/login/"}, timeout=60, allow_redirects=False)
    assert r.status_code == 302, r.text[:500]
    return http
