"""Deleting a storage gives its mount back once no other storage uses it; a Target's mount holding
staged labels is kept (the delete still answers Label Studio's 204, with a notice header) until the
user syncs or discards them through the app."""
import json
import os

import httpx
from ls_helpers import TEXT_CONFIG, commits, listing, make_repo, put

from pachstudio.labelstudio.storage.paths import mount_name


def mounts(labelstudio) -> dict:
    return {m['name']: m for m in httpx.get(labelstudio.mount_api + '/mounts', timeout=60).json()['mounted']}


def in_kernel(labelstudio, name) -> bool:
    return name in os.listdir(labelstudio.mount_dir)


def source_project(labelstudio, ls_pach, repo):
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo)
    assert labelstudio.sync(source['id'])['status'] == 'completed'
    return project, source


def test_a_source_mount_goes_with_the_last_storage_that_uses_it(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {'t.json': json.dumps({'text': 'x'})})
    _, first = source_project(labelstudio, ls_pach, repo)
    _, second = source_project(labelstudio, ls_pach, repo)  # another project, the same branch: one mount
    name = mount_name('ro', 'default', repo, 'master')
    assert name in mounts(labelstudio)
    labelstudio.api('DELETE', f'/api/storages/pachyderm/{first["id"]}', expect=204)
    assert name in mounts(labelstudio) and in_kernel(labelstudio, name)  # the other one still reads it
    labelstudio.api('DELETE', f'/api/storages/pachyderm/{second["id"]}', expect=204)
    assert name not in mounts(labelstudio) and not in_kernel(labelstudio, name)


def test_a_target_with_nothing_staged_is_unmounted_at_once(labelstudio, ls_pach):
    src, labels = make_repo(ls_pach), make_repo(ls_pach)
    put(ls_pach, src, {'t.json': json.dumps({'text': 'x'})})
    project, _ = source_project(labelstudio, ls_pach, src)
    target = labelstudio.create_target(project['id'], repo=labels)
    labelstudio.wait_storage(target['id'], target=True)
    name = mount_name('rw', 'default', labels, 'master')
    assert name in mounts(labelstudio)
    r = labelstudio.api('DELETE', f'/api/storages/export/pachyderm/{target["id"]}', expect=204)
    assert 'X-Pachstudio-Notice' not in r.headers
    assert name not in mounts(labelstudio) and not in_kernel(labelstudio, name)


def labeled_target(labelstudio, ls_pach, branch):
    src, labels = make_repo(ls_pach), make_repo(ls_pach)
    put(ls_pach, src, {'t.json': json.dumps({'text': 'x'})})
    project, _ = source_project(labelstudio, ls_pach, src)
    target = labelstudio.create_target(project['id'], repo=labels, branch=branch)
    labelstudio.wait_storage(target['id'], target=True)
    task = labelstudio.tasks(project['id'])[0]
    annotation = labelstudio.annotate(task['id'])
    name = mount_name('rw', 'default', labels, branch)
    path = labelstudio.mount_dir / name / f'{annotation["id"]}.json'
    assert path.exists()  # staged, not synced
    return target, labels, name, annotation


def test_a_target_with_staged_labels_is_kept_until_synced(labelstudio, ls_pach):
    target, labels, name, annotation = labeled_target(labelstudio, ls_pach, 'kept-sync')
    r = labelstudio.api('DELETE', f'/api/storages/export/pachyderm/{target["id"]}', expect=204)
    assert name in r.headers['X-Pachstudio-Notice'] and 'kept' in r.headers['X-Pachstudio-Notice']
    assert mounts(labelstudio)[name]['status'].startswith('kept: ')
    kept = {k['mount']: k for k in labelstudio.api('GET', '/api/storages/export/pachyderm/kept', expect=200).json()}
    assert kept[name]['staged']['added'] == 1 and kept[name]['storage'] == target['id']
    before = len(commits(ls_pach, labels, 'kept-sync'))
    done = labelstudio.api('POST', f'/api/storages/export/pachyderm/kept/{name}/sync', expect=200).json()
    assert done['added'] == 1 and done['commit']
    assert len(commits(ls_pach, labels, 'kept-sync')) == before + 1
    assert listing(ls_pach, labels, 'kept-sync') == {f'{annotation["id"]}.json'}
    assert name not in mounts(labelstudio) and not in_kernel(labelstudio, name)
    assert name not in {k['mount'] for k in labelstudio.api('GET', '/api/storages/export/pachyderm/kept').json()}


def test_a_kept_target_mount_is_discarded_on_request(labelstudio, ls_pach):
    target, labels, name, _ = labeled_target(labelstudio, ls_pach, 'kept-drop')
    labelstudio.api('DELETE', f'/api/storages/export/pachyderm/{target["id"]}', expect=204)
    before = commits(ls_pach, labels, 'kept-drop')
    r = labelstudio.api('POST', f'/api/storages/export/pachyderm/kept/{name}/discard', expect=200)
    assert 'discarded' in r.json()['message']
    assert commits(ls_pach, labels, 'kept-drop') == before and listing(ls_pach, labels, 'kept-drop') == set()
    assert name not in mounts(labelstudio)
    r = labelstudio.api('POST', f'/api/storages/export/pachyderm/kept/{name}/discard', expect=404)
    assert f'no kept mount named {name}' in r.text
