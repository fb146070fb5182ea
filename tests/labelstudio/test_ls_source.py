"""Pachyderm Source storage, driven through Label Studio's REST API like the UI does."""
import json

import pytest
from ls_helpers import IMAGE_CONFIG, TEXT_CONFIG, error_text, make_repo, put
from pachyderm_sdk.api import pfs

from plugins.labelstudio import CLUSTER_SECRET, free_port


def by_path(tasks) -> dict:
    paths = [t['data']['pachyderm_path'] for t in tasks]
    assert len(paths) == len(set(paths)), f'duplicate tasks for {paths}'
    return {t['data']['pachyderm_path']: t for t in tasks}


def file_url(task) -> str:
    urls = [v for v in task['data'].values() if isinstance(v, str) and '/data/pachyderm/' in v]
    assert len(urls) == 1, task['data']
    return urls[0]


def test_pachyderm_is_a_source_and_target_type_with_a_backend_form(labelstudio):
    for kind in ('', 'export/'):
        types = labelstudio.api('GET', f'/api/storages/{kind}types', expect=200).json()
        assert {'name': 'pachyderm', 'title': 'Pachyderm'} in types
    source_form = labelstudio.api('GET', '/api/storages/pachyderm/form', expect=200).json()
    names = {f['name'] for row in source_form for f in row['fields']}
    assert {'title', 'pach_project', 'repo', 'branch', 'commit', 'prefix', 'regex_filter', 'recursive_scan',
            'use_blob_urls'} <= names
    target_form = labelstudio.api('GET', '/api/storages/export/pachyderm/form', expect=200).json()
    names = {f['name'] for row in target_form for f in row['fields']}
    assert {'title', 'pach_project', 'repo', 'branch', 'prefix', 'file_format'} <= names


def test_blob_sync_makes_one_task_per_file_recording_path_and_commit(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    head = put(ls_pach, repo, {'images/a.png': b'A' * 100, 'images/b.jpg': b'B', 'images/sub/c.png': b'C',
                               'other/d.png': b'D'})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project['id'], title='images', repo=repo, prefix='/images/',
                                       use_blob_urls=True, recursive_scan=True)
    assert (source['type'], source['pach_project'], source['branch'], source['prefix']) == \
        ('pachyderm', 'default', 'master', 'images')

    done = labelstudio.sync(source['id'])

    assert done['status'] == 'completed', done
    assert done['last_sync_count'] == 3
    assert done['synced_commit'] == head and done['meta']['commit'] == head
    tasks = by_path(labelstudio.tasks(project['id']))
    assert set(tasks) == {'images/a.png', 'images/b.jpg', 'images/sub/c.png'}
    assert {t['data']['pachyderm_commit'] for t in tasks.values()} == {head}
    assert {t['storage_filename'] for t in tasks.values()} == set(tasks)
    listed = labelstudio.api('GET', f'/api/storages/?project={project["id"]}', expect=200).json()
    assert [s['id'] for s in listed if s['type'] == 'pachyderm'] == [source['id']]


def test_prefix_recursion_and_regex_choose_the_files(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {'img/a.png': b'a', 'img/b.jpg': b'b', 'img/deep/c.png': b'c', 'top.png': b't'})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    flat = labelstudio.create_source(project['id'], repo=repo, prefix='img', use_blob_urls=True)
    assert labelstudio.sync(flat['id'])['last_sync_count'] == 2
    assert set(by_path(labelstudio.tasks(project['id']))) == {'img/a.png', 'img/b.jpg'}

    project2 = labelstudio.create_project(label_config=IMAGE_CONFIG)
    pngs = labelstudio.create_source(project2['id'], repo=repo, regex_filter=r'.*\.png$', use_blob_urls=True,
                                     recursive_scan=True)
    assert labelstudio.sync(pngs['id'])['last_sync_count'] == 3
    assert set(by_path(labelstudio.tasks(project2['id']))) == {'img/a.png', 'img/deep/c.png', 'top.png'}


def test_file_view_streams_with_ranges_and_etags_and_refuses_bad_paths(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    body = bytes(range(256)) * 40
    put(ls_pach, repo, {'media/clip.bin': body, 'media/pic.png': b'\x89PNG....'})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, prefix='media', use_blob_urls=True)
    labelstudio.sync(source['id'])
    url = labelstudio.url + file_url(by_path(labelstudio.tasks(project['id']))['media/clip.bin'])
    session = labelstudio.session

    full = session.get(url)
    assert full.status_code == 200 and full.content == body
    etag = full.headers['ETag']
    part = session.get(url, headers={'Range': 'bytes=100-199'})
    assert part.status_code == 206 and part.content == body[100:200]
    assert part.headers['Content-Range'] == f'bytes 100-199/{len(body)}'
    assert session.get(url, headers={'If-None-Match': etag}).status_code == 304
    png = session.get(labelstudio.url + file_url(by_path(labelstudio.tasks(project['id']))['media/pic.png']))
    assert png.headers['Content-Type'] == 'image/png'

    base = f'{labelstudio.url}/data/pachyderm/{source["id"]}/'
    assert session.get(base, params={'path': 'media/missing.png'}).status_code == 404
    for evil in ('../../../etc/passwd', '/etc/passwd', 'media/../../x', 'media/..', 'a\\..\\b'):
        answer = session.get(base, params={'path': evil})
        assert answer.status_code == 400, (evil, answer.status_code, answer.text)
    assert session.get(f'{labelstudio.url}/data/pachyderm/999999/', params={'path': 'x'}).status_code == 404
    import requests

    assert requests.get(url, timeout=30).status_code in (401, 403)


def test_a_labeled_file_shows_the_content_its_labels_refer_to(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    first = put(ls_pach, repo, {f'{n}.png': f'{n} v1' for n in 'abc'})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, use_blob_urls=True)
    labelstudio.sync(source['id'])
    tasks = by_path(labelstudio.tasks(project['id']))
    labelstudio.annotate(tasks['a.png']['id'])
    labelstudio.annotate(tasks['c.png']['id'])

    second = put(ls_pach, repo, {'a.png': 'a v2', 'b.png': 'b v2', 'c.png': None})
    labelstudio.sync(source['id'])
    after = by_path(labelstudio.tasks(project['id']))
    session = labelstudio.session

    def shown(path):
        answer = session.get(labelstudio.url + file_url(after[path]))
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        return answer.text
    assert shown('a.png') == 'a v1'  # labeled, changed since: the labeled content
    assert shown('c.png') == 'c v1'  # labeled, deleted since: still there to review
    assert shown('b.png') == 'b v2'  # unlabeled: the task follows the file
    assert after['a.png']['data']['pachyderm_commit'] == first
    assert after['b.png']['data']['pachyderm_commit'] == second

    base = f'{labelstudio.url}/data/pachyderm/{source["id"]}/'
    other = session.get(base, params={'path': 'b.png', 'commit': first})
    assert other.status_code == 404 and 'no task of this storage shows it' in other.text
    assert session.get(base, params={'path': 'a.png', 'commit': 'f' * 32}).status_code == 404
    assert session.get(base, params={'path': '../a.png', 'commit': first}).status_code in (400, 404)


def test_json_tasks_import_and_a_bad_file_is_named_and_skipped(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    head = put(ls_pach, repo, {
        'tasks/one.json': json.dumps({'text': 'one'}),
        'tasks/many.json': json.dumps([{'text': 'two'}, {'data': {'text': 'three'}}]),
        'tasks/notes.txt': 'this is not JSON',
        'tasks/scalar.json': json.dumps('just a string'),
    })
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, prefix='tasks', use_blob_urls=False)

    done = labelstudio.sync(source['id'])

    assert done['status'] == 'completed_with_errors', done
    assert done['last_sync_count'] == 3
    assert 'tasks/notes.txt' in done['traceback'] and 'tasks/scalar.json' in done['traceback']
    assert 'tasks/one.json' not in done['traceback']
    tasks = labelstudio.tasks(project['id'])
    assert sorted(t['data']['text'] for t in tasks) == ['one', 'three', 'two']
    assert {t['data']['pachyderm_path'] for t in tasks} == {'tasks/one.json', 'tasks/many.json'}
    assert {t['data']['pachyderm_commit'] for t in tasks} == {head}


def test_resync_is_incremental_and_never_duplicates(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {f'{n}.json': json.dumps({'text': n}) for n in 'abcd'})
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo)
    first = labelstudio.sync(source['id'])
    assert first['last_sync_count'] == 4 and first['meta']['sync_mode'] == 'full'
    tasks = by_path(labelstudio.tasks(project['id']))
    labelstudio.annotate(tasks['b.json']['id'])
    labelstudio.annotate(tasks['d.json']['id'])

    head2 = put(ls_pach, repo, {'e.json': json.dumps({'text': 'e'}), 'a.json': json.dumps({'text': 'a2'}),
                                'b.json': json.dumps({'text': 'b2'}), 'c.json': None, 'd.json': None})
    second = labelstudio.sync(source['id'])

    assert second['status'] == 'completed', second
    meta = second['meta']
    assert meta['sync_mode'] == 'incremental'
    assert (meta['files_added'], meta['files_changed'], meta['files_deleted']) == (1, 2, 2)
    assert second['last_sync_count'] == 1 and second['synced_commit'] == head2
    after = by_path(labelstudio.tasks(project['id']))
    assert set(after) == {'a.json', 'b.json', 'd.json', 'e.json'}  # unlabeled c removed, labeled d kept
    assert after['a.json']['id'] == tasks['a.json']['id']
    assert after['a.json']['data']['text'] == 'a2' and after['a.json']['data']['pachyderm_commit'] == head2
    assert after['b.json']['data']['text'] == 'b' and after['b.json']['data']['pachyderm_changed'] == head2
    assert after['d.json']['data']['pachyderm_deleted'] == head2
    assert after['e.json']['data']['pachyderm_commit'] == head2

    third = labelstudio.sync(source['id'])
    assert third['last_sync_count'] == 0 and third['meta']['files_added'] == 0
    assert len(labelstudio.tasks(project['id'])) == 4

    put(ls_pach, repo, {'c.json': json.dumps({'text': 'c'}), 'd.json': json.dumps({'text': 'd'})})
    fourth = labelstudio.sync(source['id'])
    again = by_path(labelstudio.tasks(project['id']))
    assert set(again) == {'a.json', 'b.json', 'c.json', 'd.json', 'e.json'}
    assert fourth['last_sync_count'] == 1  # c is new; d comes back to its labeled task
    assert again['d.json']['id'] == tasks['d.json']['id'] and 'pachyderm_deleted' not in again['d.json']['data']


def test_pinned_commit_imports_that_commit_only(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    first = put(ls_pach, repo, {'x.png': b'1'})
    put(ls_pach, repo, {'y.png': b'2'})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, commit=first, use_blob_urls=True)
    done = labelstudio.sync(source['id'])
    assert done['synced_commit'] == first
    assert set(by_path(labelstudio.tasks(project['id']))) == {'x.png'}


def test_sync_runs_outside_the_request(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {f'f/{i:05d}.png': b'x' for i in range(3000)})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, prefix='f', use_blob_urls=True)

    answer = labelstudio.api('POST', f'/api/storages/pachyderm/{source["id"]}/sync', expect=200).json()

    assert answer['status'] in ('queued', 'in_progress'), answer['status']
    done = labelstudio.wait_storage(source['id'])
    assert done['status'] == 'completed' and done['last_sync_count'] == 3000
    assert len(labelstudio.tasks(project['id'])) == 3000


@pytest.fixture(scope='module')
def check_repo(ls_pach_module):
    repo = make_repo(ls_pach_module)
    commit = put(ls_pach_module, repo, {'data/a.png': b'a'})
    return repo, commit


@pytest.fixture(scope='module')
def ls_pach_module(shared_pfs_server):
    return shared_pfs_server.client()


@pytest.mark.parametrize('fields, message', [
    ({'pach_project': 'no-such-project'}, 'project "no-such-project" not found'),
    ({'repo': 'no-such-repo'}, 'repo "no-such-repo" not found'),
    ({'branch': 'no-such-branch'}, 'branch "no-such-branch" not found'),
    ({'commit': '0123456789abcdef0123456789abcdef'}, 'commit "0123456789abcdef0123456789abcdef" not found'),
    ({'prefix': 'empty-folder'}, 'no files under prefix "empty-folder"'),
    ({'prefix': 'data', 'regex_filter': r'.*\.tiff'}, r'matching regex ".*\.tiff"'),
    ({'regex_filter': '(unclosed'}, 'not a valid regular expression'),
    ({'prefix': '../outside'}, 'leaves its folder'),
])
def test_check_connection_says_what_is_wrong(labelstudio, check_repo, fields, message):
    repo, _ = check_repo
    project = labelstudio.create_project()
    body = {'project': project['id'], 'repo': repo, 'use_blob_urls': True, **fields}
    for path in ('/api/storages/pachyderm/validate', '/api/storages/pachyderm'):
        answer = labelstudio.api('POST', path, json=body)
        assert answer.status_code == 400, (path, answer.text)
        assert message in error_text(answer), answer.text
    assert labelstudio.api('GET', f'/api/storages/pachyderm?project={project["id"]}', expect=200).json() == []


def test_check_connection_accepts_a_good_source(labelstudio, check_repo):
    repo, commit = check_repo
    project = labelstudio.create_project()
    for fields in ({}, {'prefix': 'data'}, {'commit': commit}):
        labelstudio.api('POST', '/api/storages/pachyderm/validate', expect=200,
                        json={'project': project['id'], 'repo': repo, **fields})


def test_preview_lists_the_files_a_sync_would_import(labelstudio, check_repo):
    repo, _ = check_repo
    project = labelstudio.create_project()
    files = labelstudio.api('POST', '/api/storages/pachyderm/files', expect=200,
                            json={'project': project['id'], 'repo': repo, 'prefix': 'data', 'use_blob_urls': True})
    assert [f['key'] for f in files.json()['files']] == ['data/a.png']


def test_no_cluster_token_in_answers_or_logs(labelstudio, ls_mount_server, check_repo):
    repo, _ = check_repo
    project = labelstudio.create_project()
    source = labelstudio.create_source(project['id'], repo=repo, use_blob_urls=True)
    labelstudio.sync(source['id'])
    answers = [labelstudio.api('GET', f'/api/storages/?project={project["id"]}').text,
               labelstudio.api('GET', f'/api/storages/pachyderm/{source["id"]}').text,
               labelstudio.api('GET', '/api/storages/pachyderm/form').text]
    for text in answers + [labelstudio.log()]:
        assert CLUSTER_SECRET not in text
    assert not [k for k in json.loads(answers[1]) if 'token' in k or 'secret' in k]


def test_a_failed_sync_shows_its_reason_on_the_card(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {'a.png': b'a'})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, use_blob_urls=True)
    ls_pach.pfs.delete_repo(repo=pfs.Repo.from_uri(f'default/{repo}'), force=True)

    answer = labelstudio.api('POST', f'/api/storages/pachyderm/{source["id"]}/sync', expect=200).json()
    assert answer['status'] in ('queued', 'in_progress', 'failed')
    card = labelstudio.wait_storage(source['id'])

    assert card['status'] == 'failed'
    assert repo in card['traceback'] and 'not found' in card['traceback'], card['traceback']
    assert 'Traceback (most recent call last)' not in card['traceback']
    assert labelstudio.tasks(project['id']) == []


def test_unreachable_cluster_is_named(labelstudio, ls_mount_server, check_repo):
    repo, _ = check_repo
    project = labelstudio.create_project()
    before = ls_mount_server.call('GET', '/config').json()['pachd_address']
    dead = f'grpc://127.0.0.1:{free_port()}'
    assert ls_mount_server.call('PUT', '/config', json={'pachd_address': dead}).status_code == 200
    try:
        answer = labelstudio.api('POST', '/api/storages/pachyderm/validate', json={
            'project': project['id'], 'repo': repo, 'pach_project': 'default'})
        assert answer.status_code == 400
        assert f'Pachyderm cluster unreachable at {dead}' in error_text(answer), answer.text
    finally:
        ls_mount_server.call('PUT', '/config', json={'pachd_address': before})
    labelstudio.api('POST', '/api/storages/pachyderm/validate', expect=200,
                    json={'project': project['id'], 'repo': repo})


def test_editing_the_filters_rescans_and_keeps_labeled_tasks(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {'a/1.png': b'1', 'a/2.png': b'2', 'b/3.png': b'3'})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, prefix='a', use_blob_urls=True)
    labelstudio.sync(source['id'])
    labelstudio.api('POST', f'/api/tasks/{by_path(labelstudio.tasks(project["id"]))["a/1.png"]["id"]}/annotations',
                    json={'result': [{'from_name': 'choice', 'to_name': 'image', 'type': 'choices',
                                      'value': {'choices': ['cat']}}]}, expect=201)

    labelstudio.api('PATCH', f'/api/storages/pachyderm/{source["id"]}', json={'prefix': 'b'}, expect=200)
    done = labelstudio.sync(source['id'])

    assert done['meta']['sync_mode'] == 'full' and done['last_sync_count'] == 1
    tasks = by_path(labelstudio.tasks(project['id']))
    assert set(tasks) == {'a/1.png', 'b/3.png'}  # unlabeled a/2 went with the old prefix
    assert tasks['a/1.png']['data']['pachyderm_deleted'] == done['synced_commit']
    answer = labelstudio.api('PATCH', f'/api/storages/pachyderm/{source["id"]}', json={'repo': 'no-such-repo'})
    assert answer.status_code == 400 and 'repo "no-such-repo" not found' in error_text(answer)
    assert labelstudio.storage(source['id'])['repo'] == repo
