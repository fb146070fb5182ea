"""A Target's versions compared (diff) and brought back (restore), through Label Studio's REST API,
on real commits read back with the Pachyderm SDK."""
import json
import subprocess
import uuid

import pytest
import requests
from ls_helpers import TEXT_CONFIG, commits, listing, make_repo, put, read

from plugins.labelstudio import VENV_BIN, label_studio_dir

ADMIN = 'admin@example.com'


def result(label):
    return [{'from_name': 'choice', 'to_name': 'text', 'type': 'choices', 'value': {'choices': [label]}}]


def api_base(target_id):
    return f'/api/storages/export/pachyderm/{target_id}'


def diff(labelstudio, target_id, old, new, expect=200):
    return labelstudio.api('GET', f'{api_base(target_id)}/diff', params={'from': old, 'to': new}, expect=expect).json()


def restore(labelstudio, target_id, commit, confirm, expect=200):
    return labelstudio.api('POST', f'{api_base(target_id)}/restore', json={'commit': commit, 'confirm': confirm},
                           expect=expect).json()


def by_task(answer) -> dict:
    return {t['task_id']: t for t in answer['tasks']}


MAKE_STRANGER = """
import django, sys
django.setup()
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
user = User.objects.create_user(email=sys.argv[1], password='stranger-pass-1')
org = Organization.create_organization(created_by=user, title='Other team', legacy_api_tokens_enabled=True)
user.active_organization = org
user.save(update_fields=['active_organization'])
print(Token.objects.get_or_create(user=user)[0].key)
"""


def stranger(labelstudio) -> requests.Session:
    """A user of another organization, with a session carrying their token."""
    made = subprocess.run([str(VENV_BIN / 'python'), '-c', MAKE_STRANGER, f'{uuid.uuid4().hex[:8]}@elsewhere.example'],
                          env=labelstudio.env(), cwd=label_studio_dir(), capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    session = requests.Session()
    session.headers['Authorization'] = f'Token {made.stdout.split()[-1]}'
    return session


def annotations(labelstudio, project_id) -> dict:
    """{annotation id: (task id, label, annotator email)} of the project now."""
    out = {}
    for task in labelstudio.tasks(project_id):
        for a in task['annotations']:
            user = labelstudio.api('GET', f'/api/users/{a["completed_by"]}', expect=200).json()
            out[a['id']] = (task['id'], a['result'][0]['value']['choices'][0], user['email'])
    return out


@pytest.fixture
def project_with_tasks(labelstudio, ls_pach):
    """A project of four tasks from a Pachyderm Source; the tasks sorted by source path."""
    source_repo = make_repo(ls_pach)
    put(ls_pach, source_repo, {f'img/t{i}.json': json.dumps({'text': f'text {i}'}) for i in range(4)})
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    source = labelstudio.create_source(project['id'], repo=source_repo, prefix='img')
    assert labelstudio.sync(source['id'])['last_sync_count'] == 4
    tasks = sorted(labelstudio.tasks(project['id']), key=lambda t: t['data']['pachyderm_path'])
    return project, [t['id'] for t in tasks]


def sync(labelstudio, target_id) -> str:
    done = labelstudio.sync(target_id, target=True)
    assert done['status'] == 'completed', done
    return done['meta']['commit']


def test_diff_between_two_syncs_and_against_staged(labelstudio, ls_pach, project_with_tasks):
    project, tasks = project_with_tasks
    a1 = labelstudio.annotate(tasks[0], 'cat')
    a2 = labelstudio.annotate(tasks[1], 'dog')
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project['id'], repo=labels, prefix='ann')
    labelstudio.wait_storage(target['id'], target=True)
    c1 = sync(labelstudio, target['id'])

    labelstudio.api('PATCH', f'/api/annotations/{a1["id"]}', json={'result': result('dog')}, expect=200)
    labelstudio.api('DELETE', f'/api/annotations/{a2["id"]}', expect=204)
    a3 = labelstudio.annotate(tasks[2], 'cat')
    c2 = sync(labelstudio, target['id'])

    answer = diff(labelstudio, target['id'], c1, c2)
    assert answer['from'] == c1 and answer['to'] == c2
    assert answer['counts'] == {'gained': 1, 'changed': 1, 'lost': 1}, answer
    tasks_seen = by_task(answer)
    assert set(tasks_seen) == {tasks[0], tasks[1], tasks[2]}
    assert tasks_seen[tasks[0]]['change'] == 'changed'
    assert tasks_seen[tasks[0]]['annotations'] == [{'id': a1['id'], 'by': ADMIN, 'change': 'changed'}]
    assert tasks_seen[tasks[1]]['change'] == 'lost'
    assert tasks_seen[tasks[1]]['annotations'] == [{'id': a2['id'], 'by': ADMIN, 'change': 'deleted'}]
    assert tasks_seen[tasks[2]]['change'] == 'gained'
    assert tasks_seen[tasks[2]]['annotations'] == [{'id': a3['id'], 'by': ADMIN, 'change': 'added'}]
    assert tasks_seen[tasks[2]]['task_url'] == f'/projects/{project["id"]}/data?task={tasks[2]}'
    page = labelstudio.api('GET', tasks_seen[tasks[2]]['task_url'])
    assert page.status_code == 200  # the link opens the project's Data Manager

    backwards = diff(labelstudio, target['id'], c2, c1)  # the other way round: gained and lost swap
    assert backwards['counts'] == {'gained': 1, 'changed': 1, 'lost': 1}
    assert by_task(backwards)[tasks[2]]['change'] == 'lost' and by_task(backwards)[tasks[1]]['change'] == 'gained'

    a4 = labelstudio.annotate(tasks[3], 'dog')  # staged, not synced
    labelstudio.api('PATCH', f'/api/annotations/{a3["id"]}', json={'result': result('dog')}, expect=200)
    staged = diff(labelstudio, target['id'], c2, 'staged')
    assert staged['to'] == 'staged' and staged['counts'] == {'gained': 1, 'changed': 1, 'lost': 0}, staged
    assert by_task(staged)[tasks[3]]['annotations'] == [{'id': a4['id'], 'by': ADMIN, 'change': 'added'}]
    assert by_task(staged)[tasks[2]]['annotations'] == [{'id': a3['id'], 'by': ADMIN, 'change': 'changed'}]
    since_first = diff(labelstudio, target['id'], c1, 'staged')  # committed and staged changes together
    assert since_first['counts'] == {'gained': 2, 'changed': 1, 'lost': 1}, since_first
    assert diff(labelstudio, target['id'], c2, c2)['tasks'] == []


def test_diff_of_per_task_files_laid_out_like_the_data(labelstudio, ls_pach, project_with_tasks):
    project, tasks = project_with_tasks
    a1 = labelstudio.annotate(tasks[0], 'cat')
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project['id'], repo=labels, prefix='lab', file_format='task',
                                       layout='source_path')
    labelstudio.wait_storage(target['id'], target=True)
    c1 = sync(labelstudio, target['id'])
    assert listing(ls_pach, labels) == {'lab/img/t0.json.json'}

    a2 = labelstudio.annotate(tasks[0], 'dog')  # a second annotation in the same task file
    a3 = labelstudio.annotate(tasks[1], 'cat')
    c2 = sync(labelstudio, target['id'])

    answer = diff(labelstudio, target['id'], c1, c2)
    assert answer['counts'] == {'gained': 2, 'changed': 0, 'lost': 0}, answer
    seen = by_task(answer)
    assert seen[tasks[0]]['annotations'] == [{'id': a2['id'], 'by': ADMIN, 'change': 'added'}]  # a1 unchanged
    assert seen[tasks[1]]['annotations'] == [{'id': a3['id'], 'by': ADMIN, 'change': 'added'}]

    labelstudio.api('DELETE', f'/api/annotations/{a1["id"]}', expect=204)
    labelstudio.api('DELETE', f'/api/annotations/{a3["id"]}', expect=204)
    staged = diff(labelstudio, target['id'], c2, 'staged')
    assert staged['counts'] == {'gained': 0, 'changed': 0, 'lost': 2}, staged
    assert by_task(staged)[tasks[1]]['annotations'] == [{'id': a3['id'], 'by': ADMIN, 'change': 'deleted'}]

    preview = restore(labelstudio, target['id'], c2, False)
    assert preview['counts'] == {'create': 2, 'update': 0, 'delete': 0}, preview
    done = restore(labelstudio, target['id'], c2, True)
    assert done['counts'] == {'create': 2, 'update': 0, 'delete': 0}
    assert set(annotations(labelstudio, project['id'])) == {a1['id'], a2['id'], a3['id']}
    c4 = sync(labelstudio, target['id'])
    assert f'restored from {c2}' in commits(ls_pach, labels)[0].description
    assert json.loads(read(ls_pach, labels, 'lab/img/t0.json.json', c4)) and diff(
        labelstudio, target['id'], c2, c4)['tasks'] == []


def test_restore_previews_then_makes_the_annotations_the_versions(labelstudio, ls_pach, project_with_tasks):
    project, tasks = project_with_tasks
    a1 = labelstudio.annotate(tasks[0], 'cat')
    a2 = labelstudio.annotate(tasks[1], 'dog')
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project['id'], repo=labels, prefix='ann')
    labelstudio.wait_storage(target['id'], target=True)
    c1 = sync(labelstudio, target['id'])
    version = annotations(labelstudio, project['id'])

    labelstudio.api('PATCH', f'/api/annotations/{a1["id"]}', json={'result': result('dog')}, expect=200)
    labelstudio.api('DELETE', f'/api/annotations/{a2["id"]}', expect=204)
    a3 = labelstudio.annotate(tasks[2], 'cat')
    sync(labelstudio, target['id'])
    a4 = labelstudio.annotate(tasks[3], 'dog')  # staged only: must not be lost
    history_before = commits(ls_pach, labels)

    preview = restore(labelstudio, target['id'], c1, False)
    assert preview['commit'] == c1 and preview['confirm'] is False
    assert preview['counts'] == {'create': 1, 'update': 1, 'delete': 2}, preview
    assert {(t['task_id'], t['change']) for t in preview['tasks']} == {
        (tasks[0], 'changed'), (tasks[1], 'gained'), (tasks[2], 'lost'), (tasks[3], 'lost')}
    assert set(annotations(labelstudio, project['id'])) == {a1['id'], a3['id'], a4['id']}  # a preview changes nothing
    assert len(commits(ls_pach, labels)) == len(history_before)

    done = restore(labelstudio, target['id'], c1, True)

    assert done['confirm'] is True and done['restored_from'] == c1
    assert done['counts'] == {'create': 1, 'update': 1, 'delete': 2}
    history = commits(ls_pach, labels)
    assert len(history) == len(history_before) + 1  # what was staged is a version of its own
    assert done['committed_first'] == history[0].commit.id
    assert f'ann/{a4["id"]}.json' in listing(ls_pach, labels, done['committed_first'])
    assert annotations(labelstudio, project['id']) == version  # same ids, labels and annotators
    assert 'restored from' not in history[0].description

    c4 = sync(labelstudio, target['id'])
    assert f'restored from {c1}' in commits(ls_pach, labels)[0].description
    assert listing(ls_pach, labels, c4) == listing(ls_pach, labels, c1)
    assert diff(labelstudio, target['id'], c1, c4)['counts'] == {'gained': 0, 'changed': 0, 'lost': 0}
    labelstudio.annotate(tasks[2], 'cat')
    c5 = sync(labelstudio, target['id'])
    assert c5 and 'restored from' not in commits(ls_pach, labels)[0].description  # said once


def test_bad_versions_are_refused_and_change_nothing(labelstudio, ls_pach, project_with_tasks):
    project, tasks = project_with_tasks
    labelstudio.annotate(tasks[0], 'cat')
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project['id'], repo=labels, prefix='ann')
    labelstudio.wait_storage(target['id'], target=True)
    c1 = sync(labelstudio, target['id'])
    other = make_repo(ls_pach)
    foreign = put(ls_pach, other, {'x.json': b'{}'})
    side = put(ls_pach, labels, {'ann/999.json': b'{}'}, branch='side')  # this repo, another branch
    unknown = uuid.uuid4().hex
    labelstudio.annotate(tasks[1], 'dog')  # staged
    before = annotations(labelstudio, project['id'])
    history = commits(ls_pach, labels)

    for commit in (foreign, side, unknown):
        for answer in (restore(labelstudio, target['id'], commit, True, expect=400),
                       restore(labelstudio, target['id'], commit, False, expect=400),
                       diff(labelstudio, target['id'], commit, c1, expect=400)):
            assert 'is not a version of this Target' in answer['detail'] and commit in answer['detail'], answer
    assert 'to:' in diff(labelstudio, target['id'], c1, unknown, expect=400)['detail']
    assert 'commit' in restore(labelstudio, target['id'], None, True, expect=400)['detail']
    assert 'confirm' in restore(labelstudio, target['id'], c1, 'yes', expect=400)['detail']
    assert 'from=' in labelstudio.api('GET', f'{api_base(target["id"])}/diff', expect=400).json()['detail']
    assert labelstudio.api('GET', f'{api_base(target["id"] + 100000)}/diff',
                           params={'from': c1, 'to': c1}, expect=404).json()['detail']
    outsider = stranger(labelstudio)
    foreign_diff = outsider.get(f'{labelstudio.url}{api_base(target["id"])}/diff', params={'from': c1, 'to': 'staged'},
                             timeout=60)
    foreign_restore = outsider.post(f'{labelstudio.url}{api_base(target["id"])}/restore',
                                 json={'commit': c1, 'confirm': True}, timeout=60)
    assert foreign_diff.status_code == 404 and 'not found' in foreign_diff.json()['detail']
    assert foreign_restore.status_code == 404 and 'not found' in foreign_restore.json()['detail']
    assert annotations(labelstudio, project['id']) == before
    assert commits(ls_pach, labels) == history


def test_restore_while_a_sync_runs_is_409_and_changes_nothing(labelstudio, ls_pach):
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    labelstudio.api('POST', f'/api/projects/{project["id"]}/import', expect=201,
                    json=[{'data': {'text': 'first'}, 'annotations': [{'result': result('cat')}]}])
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project['id'], repo=labels, prefix='ann')
    labelstudio.wait_storage(target['id'], target=True)
    c1 = sync(labelstudio, target['id'])
    # a bulk import bypasses the save hooks: the next Sync stages all of these itself, which takes a while
    labelstudio.api('POST', f'/api/projects/{project["id"]}/import', expect=201, json=[
        {'data': {'text': f'text {i}'}, 'annotations': [{'result': result('dog')}]} for i in range(1500)])
    count = len(labelstudio.tasks(project['id']))
    history = commits(ls_pach, labels)

    labelstudio.api('POST', f'{api_base(target["id"])}/sync', expect=200)
    refused = restore(labelstudio, target['id'], c1, True, expect=409)

    assert 'Sync' in refused['detail'] and 'running' in refused['detail'], refused
    done = labelstudio.wait_storage(target['id'], target=True)
    assert done['status'] == 'completed' and done['meta']['commit'], done
    assert len(labelstudio.tasks(project['id'])) == count
    assert sum(len(t['annotations']) for t in labelstudio.tasks(project['id'])) == 1501
    assert len(commits(ls_pach, labels)) == len(history) + 1  # only the Sync's own commit
    assert 'restored from' not in commits(ls_pach, labels)[0].description
