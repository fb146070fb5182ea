"""A Target's versions and tags in Label Studio (issue 17 items 1 and 4): real Target Syncs make
the commits, the pachyderm SDK and label-studio-sdk read them back."""
import re
import subprocess
import sys

import grpc
import pytest
import requests
from label_studio_sdk.client import LabelStudio as LabelStudioSDK
from ls_helpers import TEXT_CONFIG, commits, make_repo, put
from pachyderm_sdk.api import pfs

from plugins.labelstudio import label_studio_dir, login

STRANGER, STRANGER_PASSWORD, STRANGER_TOKEN = 'versions-stranger@example.com', 'stranger-pass-0123', 'stranger-tok-0123'
MAKE_STRANGER = f"""
import django
django.setup()
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
user = User.objects.filter(email={STRANGER!r}).first()
if user is None:
    user = User.objects.create_user(email={STRANGER!r}, password={STRANGER_PASSWORD!r})
    org = Organization.create_organization(created_by=user, title="Other team", legacy_api_tokens_enabled=True)
    user.active_organization = org
    user.save(update_fields=["active_organization"])
    Token.objects.filter(user=user).delete()
    Token.objects.create(user=user, key={STRANGER_TOKEN!r})
print("made")
"""


def result(label):
    return [{'from_name': 'choice', 'to_name': 'text', 'type': 'choices', 'value': {'choices': [label]}}]



@pytest.fixture(scope='module')
def stranger(labelstudio) -> requests.Session:
    """A user of another organization, with a token (made as an admin would, with Django)."""
    env = dict(labelstudio.env(), PYTHONPATH=label_studio_dir())
    out = subprocess.run([sys.executable, '-c', MAKE_STRANGER], env=env, cwd=labelstudio.root,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and 'made' in out.stdout, out.stderr[-2000:]
    http = requests.Session()
    http.headers['Authorization'] = f'Token {STRANGER_TOKEN}'
    return http


@pytest.fixture(scope='module')
def versioned(labelstudio, shared_pfs_server):
    """A Target on `labels@versions` with two Syncs: v1 adds two annotations, v2 changes one and
    deletes the other; then one more annotation is staged and not synced."""
    pach = shared_pfs_server.client()
    sdk = LabelStudioSDK(base_url=labelstudio.url, api_key=labelstudio.token)
    source_repo = make_repo(pach)
    source_commit = put(pach, source_repo, {f't{i}.json': f'{{"text": "text {i}"}}' for i in range(3)})
    project = sdk.projects.create(title='Versions', label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project.id, repo=source_repo)
    assert labelstudio.sync(source['id'])['last_sync_count'] == 3
    tasks = sorted(sdk.tasks.list(project=project.id), key=lambda t: t.data['pachyderm_path'])
    labels = make_repo(pach)
    target = labelstudio.create_target(project.id, repo=labels, branch='versions', prefix='ann')
    labelstudio.wait_storage(target['id'], target=True)
    a1 = sdk.annotations.create(id=tasks[0].id, result=result('cat'))
    a2 = sdk.annotations.create(id=tasks[1].id, result=result('dog'))
    v1 = labelstudio.sync(target['id'], target=True)['meta']['commit']
    labelstudio.api('PATCH', f'/api/annotations/{a1.id}', json={'result': result('dog')}, expect=200)
    labelstudio.api('DELETE', f'/api/annotations/{a2.id}', expect=204)
    v2 = labelstudio.sync(target['id'], target=True)['meta']['commit']
    sdk.annotations.create(id=tasks[2].id, result=result('cat'))  # staged, not synced
    return {'target': target['id'], 'project': project.id, 'labels': labels, 'v1': v1, 'v2': v2,
            'source': f'default/{source_repo}@{source_commit}', 'pach': pach}


def base(v):
    return f'/api/storages/export/pachyderm/{v["target"]}'


def branch_head(pach, repo, name):
    try:
        return pach.pfs.inspect_branch(branch=pfs.Branch.from_uri(f'default/{repo}@{name}')).head.id
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND
        return None


def test_versions_are_the_targets_commits_newest_first_with_what_each_holds(labelstudio, versioned):
    v = versioned
    answer = labelstudio.api('GET', base(v) + '/versions', expect=200).json()
    history = [c.commit.id for c in commits(v['pach'], v['labels'], 'versions')]
    assert [x['commit'] for x in answer['versions']] == history and history[:2] == [v['v2'], v['v1']]
    assert answer['count'] == len(history) and (answer['page'], answer['page_size']) == (1, 50)
    assert answer['staged'] == 1
    newest, first = answer['versions'][0], answer['versions'][1]
    assert (first['added'], first['changed'], first['deleted']) == (2, 0, 0)
    assert (newest['added'], newest['changed'], newest['deleted']) == (0, 1, 1)
    assert first['annotators'] == ['admin@example.com'] and first['source_commits'] == [v['source']]
    assert newest['restored_from'] is None and newest['tags'] == []
    assert newest['finished'] and 'Label Studio project' in newest['description']

    paged = labelstudio.api('GET', base(v) + '/versions?page=2&page_size=1', expect=200).json()
    assert [x['commit'] for x in paged['versions']] == [v['v1']] and paged['count'] == len(history)
    missing = labelstudio.api('GET', '/api/storages/export/pachyderm/999999/versions', expect=404).json()
    assert missing == {'detail': 'Pachyderm target storage 999999 not found'}
    bad = labelstudio.api('GET', base(v) + '/versions?page_size=0', expect=400).json()
    assert bad == {'detail': "page_size: '0' is not a whole number from 1 to 1000"}


def test_a_tag_is_a_pachyderm_branch_at_that_version(labelstudio, versioned):
    v = versioned
    made = labelstudio.api('POST', base(v) + '/tags', json={'name': 'v1', 'commit': v['v1']}, expect=201).json()
    assert made == {'name': 'v1', 'commit': v['v1']}
    assert branch_head(v['pach'], v['labels'], 'v1') == v['v1']
    assert labelstudio.api('GET', base(v) + '/tags', expect=200).json() == [{'name': 'v1', 'commit': v['v1']}]
    listed = labelstudio.api('GET', base(v) + '/versions', expect=200).json()['versions']
    assert [x['tags'] for x in listed[:2]] == [[], ['v1']]
    labelstudio.api('POST', base(v) + '/tags', json={'name': 'v1', 'commit': v['v1']}, expect=200)
    assert branch_head(v['pach'], v['labels'], 'versions') == v['v2']  # the Target's branch stays


@pytest.mark.parametrize('name', ['before synthetic', 'v3.1', 'a/b', 'x' * 64])
def test_a_tag_name_pachyderm_rejects_is_refused_with_the_rule(labelstudio, versioned, name):
    v = versioned
    before = sorted(b.branch.name for b in v['pach'].pfs.list_branch(repo=pfs.Repo.from_uri(v['labels'])))
    answer = labelstudio.api('POST', base(v) + '/tags', json={'name': name, 'commit': v['v1']}, expect=400).json()
    assert set(answer) == {'detail'}
    assert 'only letters, digits, underscores and dashes' in answer['detail'] and 'at most 63' in answer['detail']
    assert sorted(b.branch.name for b in v['pach'].pfs.list_branch(repo=pfs.Repo.from_uri(v['labels']))) == before


def test_a_commit_of_another_repo_is_refused_and_an_existing_tag_is_not_moved(labelstudio, versioned):
    v = versioned
    other_repo = make_repo(v['pach'])
    foreign = put(v['pach'], other_repo, {'x.txt': 'x'})
    answer = labelstudio.api('POST', base(v) + '/tags', json={'name': 'elsewhere', 'commit': foreign}, expect=400)
    assert f'{foreign} is not a version of default/{v["labels"]}@versions' in answer.json()['detail']
    assert branch_head(v['pach'], v['labels'], 'elsewhere') is None

    labelstudio.api('POST', base(v) + '/tags', json={'name': 'keep', 'commit': v['v1']}, expect=201)
    moved = labelstudio.api('POST', base(v) + '/tags', json={'name': 'keep', 'commit': v['v2']}, expect=409).json()
    assert f'already exists at commit {v["v1"]}' in moved['detail']
    assert branch_head(v['pach'], v['labels'], 'keep') == v['v1']
    labelstudio.api('POST', base(v) + '/tags', json={'name': 'keep'}, expect=400)


def test_another_organization_sees_neither_the_versions_nor_the_page(labelstudio, versioned, stranger):
    v = versioned
    for path in ('/versions', '/tags'):
        r = stranger.get(labelstudio.url + base(v) + path, timeout=60)
        assert r.status_code == 404 and r.json() == {'detail': f'Pachyderm target storage {v["target"]} not found'}
    r = stranger.post(labelstudio.url + base(v) + '/tags', json={'name': 'x', 'commit': v['v1']}, timeout=60)
    assert r.status_code == 404 and branch_head(v['pach'], v['labels'], 'x') is None
    assert requests.get(labelstudio.url + base(v) + '/versions', timeout=60).status_code == 401
    page = f'{labelstudio.url}/pachyderm/targets/{v["target"]}/versions'
    assert login(labelstudio, STRANGER, STRANGER_PASSWORD).get(page, timeout=60).status_code == 404
    anonymous = requests.get(page, timeout=60, allow_redirects=False)
    assert anonymous.status_code == 302 and anonymous.headers['Location'].startswith('/user/login/')
    # nor the project's Targets, which the Data Manager's Versions links come from (its page, served
    # to any signed-in user, carries no project data of ours)
    browser = login(labelstudio, STRANGER, STRANGER_PASSWORD)
    data_page = browser.get(f'{labelstudio.url}/projects/{v["project"]}/data', timeout=60)
    assert data_page.status_code == 200 and '/pachyderm/assets/labeling_links.js' in data_page.text
    assert f'/pachyderm/targets/{v["target"]}' not in data_page.text
    targets = browser.get(f'{labelstudio.url}/api/storages/export/pachyderm?project={v["project"]}', timeout=60)
    assert targets.status_code == 404 and targets.json()['detail'] == f'project {v["project"]} not found'


def test_the_versions_page_is_served_to_the_projects_user_in_label_studios_frame(labelstudio, versioned):
    v = versioned
    browser = login(labelstudio, 'admin@example.com', 'pass1234')
    page = browser.get(f'{labelstudio.url}/pachyderm/targets/{v["target"]}/versions', timeout=60)
    assert page.status_code == 200 and page.headers['Content-Type'].startswith('text/html')
    assert f'default/{v["labels"]}@versions' in page.text and 'id="versions-table"' in page.text
    assert f'"api": "/api/storages/export/pachyderm/{v["target"]}"' in page.text
    # Label Studio's base page (its app draws the header and menu) with the project's breadcrumbs
    assert '<script id="app-settings"' in page.text and '/react-app/main.js' in page.text
    assert ('{"breadcrumbs": [{"title": "Projects", "href": "/projects"}, {"title": "Versions", "href": '
            f'"/projects/{v["project"]}/data"}}, {{"title": "Versions"}}]}}') in page.text
    script = re.search(r'<script src="(/pachyderm/assets/versions_page\.js\?v=\w+)"', page.text).group(1)
    served = browser.get(labelstudio.url + script, timeout=60)
    assert served.status_code == 200 and served.headers['Content-Type'].startswith('text/javascript')
    assert 'immutable' in served.headers['Cache-Control'] and 'window.PachstudioVersionsPage' in served.text
    assert requests.get(labelstudio.url + script, timeout=60, allow_redirects=False).status_code == 302
    assert browser.get(f'{labelstudio.url}/pachyderm/assets/settings.py', timeout=60).status_code == 404
    # the Data Manager's Versions links: its page loads the script, the storage API lists the Targets
    data_page = browser.get(f'{labelstudio.url}/projects/{v["project"]}/data', timeout=60)
    assert data_page.status_code == 200 and '/pachyderm/assets/labeling_links.js' in data_page.text
    targets = labelstudio.api('GET', f'/api/storages/export/pachyderm?project={v["project"]}', expect=200).json()
    assert v['target'] in [t['id'] for t in targets]
