"""Pachyderm Target storage: annotations staged at once in the read-write mount, one commit per Sync."""
import json

import pytest
from label_studio_sdk.client import LabelStudio as LabelStudioSDK
from ls_helpers import TEXT_CONFIG, commits, error_text, listing, make_repo, put, read

from pachstudio.labelstudio.storage.paths import mount_name

RESULT = [{'from_name': 'choice', 'to_name': 'text', 'type': 'choices', 'value': {'choices': ['cat']}}]


def result(label):
    return [{'from_name': 'choice', 'to_name': 'text', 'type': 'choices', 'value': {'choices': [label]}}]


def staged_file(labelstudio, repo, branch, path):
    return labelstudio.mount_dir / mount_name('rw', 'default', repo, branch) / path


@pytest.fixture
def sdk(labelstudio):
    return LabelStudioSDK(base_url=labelstudio.url, api_key=labelstudio.token)


@pytest.fixture
def labeled_project(labelstudio, ls_pach, sdk):
    """A project whose three tasks came from a Pachyderm Source (through the SDK where it can)."""
    source_repo = make_repo(ls_pach)
    source_commit = put(ls_pach, source_repo, {f't{i}.json': json.dumps({'text': f'text {i}'}) for i in range(3)})
    project = sdk.projects.create(title='Target flow', label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project.id, repo=source_repo)
    assert labelstudio.sync(source['id'])['last_sync_count'] == 3
    tasks = sorted(sdk.tasks.list(project=project.id), key=lambda t: t.data['pachyderm_path'])
    return project, tasks, source_repo, source_commit


def test_sync_is_one_commit_with_every_staged_change_and_says_what_it_holds(labelstudio, ls_pach, sdk,
                                                                            labeled_project):
    project, tasks, source_repo, source_commit = labeled_project
    a1 = sdk.annotations.create(id=tasks[0].id, result=result('cat'))
    a2 = sdk.annotations.create(id=tasks[1].id, result=result('dog'))
    labels = make_repo(ls_pach)

    target = labelstudio.create_target(project.id, title='labels', repo=labels, branch='labelled', prefix='ann')
    staged = labelstudio.wait_storage(target['id'], target=True)
    assert staged['status'] == 'completed' and staged['meta']['staged'] == 2, staged
    assert staged_file(labelstudio, labels, 'labelled', f'ann/{a1.id}.json').exists()
    before = commits(ls_pach, labels, 'labelled')  # the new branch may start with an empty commit
    assert listing(ls_pach, labels, 'labelled') == set()  # staged on local disk, nothing sent yet

    done = labelstudio.sync(target['id'], target=True)

    assert done['status'] == 'completed', done
    commit = done['meta']['commit']
    assert commit and done['last_commit'] == commit
    history = commits(ls_pach, labels, 'labelled')
    assert len(history) == len(before) + 1 and history[0].commit.id == commit
    assert listing(ls_pach, labels, 'labelled') == {f'ann/{a1.id}.json', f'ann/{a2.id}.json'}
    content = json.loads(read(ls_pach, labels, f'ann/{a1.id}.json', 'labelled'))
    assert content['id'] == a1.id and content['result'][0]['value']['choices'] == ['cat']
    assert content['task']['id'] == tasks[0].id and content['completed_by']['email'] == 'admin@example.com'
    description = history[0].description
    assert f'Label Studio project {project.id} "Target flow"' in description
    assert '2 added, 0 changed, 0 deleted' in description
    assert 'admin@example.com' in description
    assert f'default/{source_repo}@{source_commit}' in description

    again = labelstudio.sync(target['id'], target=True)
    assert again['status'] == 'completed' and again['meta']['commit'] is None
    assert again['last_commit'] == commit
    assert len(commits(ls_pach, labels, 'labelled')) == len(before) + 1

    labelstudio.api('PATCH', f'/api/annotations/{a1.id}', json={'result': result('dog')}, expect=200)
    labelstudio.api('DELETE', f'/api/annotations/{a2.id}', expect=204)
    a3 = sdk.annotations.create(id=tasks[2].id, result=result('cat'))
    assert json.loads(staged_file(labelstudio, labels, 'labelled', f'ann/{a1.id}.json').read_text())[
        'result'][0]['value']['choices'] == ['dog']
    assert not staged_file(labelstudio, labels, 'labelled', f'ann/{a2.id}.json').exists()
    assert staged_file(labelstudio, labels, 'labelled', f'ann/{a3.id}.json').exists()

    third = labelstudio.sync(target['id'], target=True)

    history = commits(ls_pach, labels, 'labelled')
    assert len(history) == len(before) + 2 and history[0].commit.id == third['meta']['commit']
    assert (third['meta']['added'], third['meta']['changed'], third['meta']['deleted']) == (1, 1, 1)
    assert '1 added, 1 changed, 1 deleted' in history[0].description
    assert listing(ls_pach, labels, 'labelled') == {f'ann/{a1.id}.json', f'ann/{a3.id}.json'}
    assert json.loads(read(ls_pach, labels, f'ann/{a1.id}.json', 'labelled'))['result'][0]['value'][
        'choices'] == ['dog']


def test_task_format_writes_one_file_per_task_with_all_its_annotations(labelstudio, ls_pach, sdk,
                                                                       labeled_project):
    project, tasks, _, _ = labeled_project
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project.id, repo=labels, file_format='task')
    labelstudio.wait_storage(target['id'], target=True)
    before = len(commits(ls_pach, labels))
    first = sdk.annotations.create(id=tasks[0].id, result=result('cat'))
    second = sdk.annotations.create(id=tasks[0].id, result=result('dog'))

    done = labelstudio.sync(target['id'], target=True)

    assert listing(ls_pach, labels) == {f'{tasks[0].id}.json'}
    content = json.loads(read(ls_pach, labels, f'{tasks[0].id}.json'))
    assert content['id'] == tasks[0].id and content['data']['text'] == 'text 0'
    assert sorted(a['id'] for a in content['annotations']) == sorted([first.id, second.id])
    assert done['meta']['added'] == 1

    labelstudio.api('DELETE', f'/api/annotations/{first.id}', expect=204)
    labelstudio.api('DELETE', f'/api/annotations/{second.id}', expect=204)
    gone = labelstudio.sync(target['id'], target=True)
    assert gone['meta']['deleted'] == 1 and listing(ls_pach, labels) == set()
    assert len(commits(ls_pach, labels)) == before + 2


def test_annotations_that_bypass_signals_are_staged_by_sync(labelstudio, ls_pach):
    """Label Studio's bulk import creates annotations without save signals: Sync still finds them."""
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project['id'], repo=labels, prefix='out')
    labelstudio.wait_storage(target['id'], target=True)
    labelstudio.api('POST', f'/api/projects/{project["id"]}/import', expect=201, json=[
        {'data': {'text': f'imported {i}'}, 'annotations': [{'result': RESULT}]} for i in range(4)])

    done = labelstudio.sync(target['id'], target=True)

    assert done['meta']['added'] == 4
    assert len(listing(ls_pach, labels)) == 4 and all(p.startswith('out/') for p in listing(ls_pach, labels))


@pytest.mark.parametrize('fields, message', [
    ({'repo': 'no-such-repo'}, 'repo "no-such-repo" not found'),
    ({'pach_project': 'no-such-project'}, 'project "no-such-project" not found'),
    ({'file_format': 'xml'}, '"xml" is not a valid choice'),
    ({'prefix': '../up'}, 'leaves its folder'),
])
def test_bad_target_is_refused_with_the_reason(labelstudio, ls_pach, fields, message):
    project = labelstudio.create_project()
    body = {'project': project['id'], 'repo': make_repo(ls_pach), **fields}
    for path in ('/api/storages/export/pachyderm/validate', '/api/storages/export/pachyderm'):
        answer = labelstudio.api('POST', path, json=body)
        assert answer.status_code == 400 and message in error_text(answer), (path, answer.text)
    assert labelstudio.api('GET', f'/api/storages/export/pachyderm?project={project["id"]}',
                           expect=200).json() == []


def test_target_on_a_new_branch_is_accepted_and_branch_appears_on_first_sync(labelstudio, ls_pach):
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    labels = make_repo(ls_pach)
    put(ls_pach, labels, {'README': b'labels live here'})
    target = labelstudio.create_target(project['id'], repo=labels, branch='from-label-studio')
    labelstudio.wait_storage(target['id'], target=True)
    labelstudio.api('POST', f'/api/projects/{project["id"]}/import', expect=201,
                    json=[{'data': {'text': 'x'}, 'annotations': [{'result': RESULT}]}])
    done = labelstudio.sync(target['id'], target=True)
    assert done['meta']['commit']
    assert any(p.endswith('.json') for p in listing(ls_pach, labels, 'from-label-studio'))
