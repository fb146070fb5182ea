"""A Sync pressed while a job of the same storage runs is queued after it, never dropped."""
import time

from ls_helpers import IMAGE_CONFIG, TEXT_CONFIG, commits, listing, make_repo, put

RESULT = [{'from_name': 'choice', 'to_name': 'text', 'type': 'choices', 'value': {'choices': ['cat']}}]
QUEUED = 'queued after the running job'


def press(labelstudio, storage_id, target):
    kind = 'export/pachyderm' if target else 'pachyderm'
    return labelstudio.api('POST', f'/api/storages/{kind}/{storage_id}/sync', expect=200).json()


def says_queued(answer) -> bool:
    return (answer['status'] == 'queued' and QUEUED in answer['meta'].get('queued', '').lower()
            and QUEUED in answer.get('message', '').lower())


def test_sync_pressed_during_target_staging_runs_after_it(labelstudio, ls_pach):
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    labelstudio.api('POST', f'/api/projects/{project["id"]}/import', expect=201, json=[
        {'data': {'text': f'text {i}'}, 'annotations': [{'result': RESULT}]} for i in range(300)])
    ids = {a['id'] for t in labelstudio.tasks(project['id']) for a in t['annotations']}
    assert len(ids) == 300
    labels = make_repo(ls_pach)
    put(ls_pach, labels, {'README': b'labels'})
    before = len(commits(ls_pach, labels))

    target = labelstudio.create_target(project['id'], repo=labels, prefix='ann')  # starts staging all 300
    answers = [press(labelstudio, target['id'], True) for _ in range(2)]  # a person and a script, at once

    assert says_queued(answers[-1]), answers[-1]  # staging, or the first Sync, still runs
    deadline = time.monotonic() + 120
    while listing(ls_pach, labels) != {'README'} | {f'ann/{i}.json' for i in ids}:
        assert time.monotonic() < deadline, f'{len(listing(ls_pach, labels))} files after 120 s'
        time.sleep(0.5)
    done = labelstudio.wait_storage(target['id'], target=True, timeout=60)
    assert done['status'] == 'completed' and 'queued' not in done['meta'], done
    assert len(commits(ls_pach, labels)) == before + 1  # one commit holds all 300
    assert done['meta']['attempts'] <= 3  # staging + at most one Sync per moment a press found a job running


def test_several_presses_during_a_source_sync_make_one_more_run(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {f'f/{i:05d}.png': b'x' for i in range(1500)})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, prefix='f', use_blob_urls=True)

    first = press(labelstudio, source['id'], False)
    put(ls_pach, repo, {'f/late.png': b'y'})  # only a run that starts after this press sees it
    later = [press(labelstudio, source['id'], False) for _ in range(3)]
    runs_meanwhile = labelstudio.storage(source['id'])['meta'].get('attempts')

    assert first['status'] in ('queued', 'in_progress') and 'message' not in first, first
    assert all(says_queued(a) for a in later), later
    done = labelstudio.wait_storage(source['id'], timeout=180)
    assert done['status'] == 'completed' and 'queued' not in done['meta'], done
    if runs_meanwhile == 1:  # all three presses came during the first run: they make exactly one more
        assert done['meta']['attempts'] == 2
    else:  # a slow machine ended the first run between presses: each later press still adds at most one
        assert done['meta']['attempts'] in (runs_meanwhile, runs_meanwhile + 1), (runs_meanwhile, done['meta'])
    assert len(labelstudio.tasks(project['id'])) == 1501


def test_sync_of_a_deleted_storage_is_404(labelstudio, ls_pach):
    repo = make_repo(ls_pach)
    put(ls_pach, repo, {'a.png': b'a'})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, use_blob_urls=True)
    target = labelstudio.create_target(project['id'], repo=make_repo(ls_pach))
    labelstudio.wait_storage(target['id'], target=True)
    for kind, storage in (('pachyderm', source), ('export/pachyderm', target)):
        labelstudio.api('DELETE', f'/api/storages/{kind}/{storage["id"]}', expect=204)
        labelstudio.api('POST', f'/api/storages/{kind}/{storage["id"]}/sync', expect=404)


def crash(ls):
    """SIGKILL gunicorn's workers and then its master (ours, by pid): no graceful end for the job."""
    import os
    import pathlib
    import signal

    children = pathlib.Path(f'/proc/{ls.proc.pid}/task/{ls.proc.pid}/children').read_text().split()
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    ls.proc.kill()
    ls.proc.wait(20)


def test_a_sync_queued_before_a_restart_runs_after_it(tmp_path, ls_mount_server, ls_pach):
    """The request is a file next to the job lock: a restart (here with the job killed mid-run)
    does not lose it; the restarted process runs it when it serves its first request."""
    from plugins.labelstudio import LabelStudio

    ls = LabelStudio(tmp_path, ls_mount_server.api, ls_mount_server.mount_dir).start()
    try:
        repo = make_repo(ls_pach)
        put(ls_pach, repo, {f'f/{i:05d}.png': b'x' for i in range(1500)})
        project = ls.create_project(label_config=IMAGE_CONFIG)
        source = ls.create_source(project['id'], repo=repo, prefix='f', use_blob_urls=True)
        press(ls, source['id'], False)
        assert says_queued(press(ls, source['id'], False))
        crash(ls)
        request = ls.data_dir / 'pachyderm-jobs' / f'PachydermImportStorage-{source["id"]}.queued'
        assert request.exists()

        ls.init_data_dir = lambda log: None  # keep this data dir (start() would copy the template over it)
        ls.start()
        done = ls.wait_storage(source['id'], timeout=180)
        assert done['status'] == 'completed', done  # (the killed run may have made some of the tasks)
        assert not request.exists()
        assert len(ls.tasks(project['id'])) == 1500
    finally:
        ls.stop()
