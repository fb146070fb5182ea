"""Target exports (COCO, YOLO, ...) in the Sync's commit, and labels laid out like the data."""
import json

from ls_helpers import TEXT_CONFIG, commits, error_text, listing, make_repo, put, read

BOX_CONFIG = ('<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
              '<Label value="cat"/><Label value="dog"/></RectangleLabels></View>')
PNG = b'\x89PNG\r\n\x1a\n' + b'\x00' * 64


def box(label, x=10, y=20, w=30, h=40):
    return [{'from_name': 'box', 'to_name': 'image', 'type': 'rectanglelabels', 'original_width': 200,
             'original_height': 100, 'image_rotation': 0,
             'value': {'x': x, 'y': y, 'width': w, 'height': h, 'rotation': 0, 'rectanglelabels': [label]}}]


def annotate(labelstudio, task_id, result):
    return labelstudio.api('POST', f'/api/tasks/{task_id}/annotations', json={'result': result}, expect=201).json()


def image_project(labelstudio, ls_pach, files, title='boxes'):
    repo = make_repo(ls_pach)
    source_commit = put(ls_pach, repo, {path: PNG for path in files})
    project = labelstudio.create_project(title=title, label_config=BOX_CONFIG)
    source = labelstudio.create_source(project['id'], repo=repo, prefix='img', recursive_scan=True,
                                       use_blob_urls=True)
    assert labelstudio.sync(source['id'])['last_sync_count'] == len(files)
    tasks = {t['data']['pachyderm_path']: t for t in labelstudio.tasks(project['id'])}
    return project, repo, source_commit, tasks


def test_coco_and_yolo_exports_are_in_the_sync_commit_and_point_at_pfs_paths(labelstudio, ls_pach):
    project, repo, source_commit, tasks = image_project(labelstudio, ls_pach, ['img/a/x.png', 'img/b/y.png'])
    first = annotate(labelstudio, tasks['img/a/x.png']['id'], box('dog'))
    annotate(labelstudio, tasks['img/b/y.png']['id'], box('cat', x=50))
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project['id'], repo=labels, prefix='labels', export_formats=['coco', 'YOLO'])
    assert target['export_formats'] == ['COCO', 'YOLO']
    labelstudio.wait_storage(target['id'], target=True)

    done = labelstudio.sync(target['id'], target=True)

    assert done['status'] == 'completed', done
    commit = done['meta']['commit']
    assert (done['meta']['added'], done['meta']['changed'], done['meta']['deleted']) == (2, 0, 0)
    files = listing(ls_pach, labels, commit)  # labels and exports: one commit
    assert f'labels/{first["id"]}.json' in files
    assert {'labels/exports/manifest.json', 'labels/exports/COCO/result.json', 'labels/exports/YOLO/classes.txt',
            'labels/exports/YOLO/labels/x.txt', 'labels/exports/YOLO/labels/y.txt'} <= files
    assert not any(p.endswith('.png') for p in files)  # images are never copied

    coco = json.loads(read(ls_pach, labels, 'labels/exports/COCO/result.json', commit))
    assert sorted(i['file_name'] for i in coco['images']) == [f'/pfs/{repo}/img/a/x.png', f'/pfs/{repo}/img/b/y.png']
    names = {c['id']: c['name'] for c in coco['categories']}
    by_image = {i['id']: i['file_name'] for i in coco['images']}
    boxes = {(by_image[a['image_id']], names[a['category_id']]): a['bbox'] for a in coco['annotations']}
    assert boxes == {(f'/pfs/{repo}/img/a/x.png', 'dog'): [20.0, 20.0, 60.0, 40.0],
                     (f'/pfs/{repo}/img/b/y.png', 'cat'): [100.0, 20.0, 60.0, 40.0]}
    classes = read(ls_pach, labels, 'labels/exports/YOLO/classes.txt', commit).decode().split()
    dog = read(ls_pach, labels, 'labels/exports/YOLO/labels/x.txt', commit).decode().split()
    assert classes[int(dog[0])] == 'dog' and [float(v) for v in dog[1:]] == [0.25, 0.4, 0.3, 0.4]

    manifest = json.loads(read(ls_pach, labels, 'labels/exports/manifest.json', commit))
    assert manifest['label_studio']['project'] == project['id'] and manifest['label_studio']['title'] == 'boxes'
    assert set(manifest['formats']) == {'COCO', 'YOLO'}
    assert sorted(i['uri'] for i in manifest['images']) == [f'default/{repo}@{source_commit}:/img/a/x.png',
                                                            f'default/{repo}@{source_commit}:/img/b/y.png']
    history = commits(ls_pach, labels)
    assert history[0].commit.id == commit
    parent = history[1].commit.id if len(history) > 1 else None
    assert manifest['version']['parent_commit'] == parent
    assert 'exports: COCO, YOLO' in history[0].description

    again = labelstudio.sync(target['id'], target=True)  # no label changed: no commit, no export
    assert again['meta']['commit'] is None and commits(ls_pach, labels)[0].commit.id == commit

    labelstudio.api('PATCH', f'/api/annotations/{first["id"]}', json={'result': box('cat')}, expect=200)
    third = labelstudio.sync(target['id'], target=True)
    assert third['meta']['changed'] == 1, third
    newer = json.loads(read(ls_pach, labels, 'labels/exports/manifest.json', third['meta']['commit']))
    assert newer['version']['parent_commit'] == commit
    coco = json.loads(read(ls_pach, labels, 'labels/exports/COCO/result.json', third['meta']['commit']))
    assert sorted(c['name'] for a in coco['annotations'] for c in coco['categories']
                  if c['id'] == a['category_id']) == ['cat', 'cat']


def test_a_format_that_does_not_fit_the_labeling_config_is_refused_on_save(labelstudio, ls_pach):
    project = labelstudio.create_project(label_config=TEXT_CONFIG)
    labels = make_repo(ls_pach)
    for formats, words in ((['YOLO'], ['YOLO', 'does not fit', 'RectangleLabels', 'JSON_MIN']),
                           ('COCO_WITH_IMAGES', ['COCO_WITH_IMAGES', 'copies the images']),
                           (['XML'], ['"XML" is not one of'])):
        body = {'project': project['id'], 'repo': labels, 'export_formats': formats}
        for path in ('/api/storages/export/pachyderm/validate', '/api/storages/export/pachyderm'):
            answer = labelstudio.api('POST', path, json=body)
            assert answer.status_code == 400, answer.text
            assert all(w in error_text(answer) for w in words), (words, answer.text)
    assert labelstudio.api('GET', f'/api/storages/export/pachyderm?project={project["id"]}',
                           expect=200).json() == []
    fits = labelstudio.create_target(project['id'], repo=labels, export_formats='json_min, csv')
    assert fits['export_formats'] == ['JSON_MIN', 'CSV']
    changed = labelstudio.api('PATCH', f'/api/storages/export/pachyderm/{fits["id"]}',
                              json={'export_formats': ['VOC']})
    assert changed.status_code == 400 and 'VOC' in error_text(changed)
    assert labelstudio.storage(fits['id'], target=True)['export_formats'] == ['JSON_MIN', 'CSV']
    as_text = labelstudio.api('PATCH', f'/api/storages/export/pachyderm/{fits["id"]}',
                              json={'export_formats_text': 'YOLO'})  # the storage form's text field
    assert as_text.status_code == 400 and 'YOLO does not fit' in error_text(as_text)
    fits = labelstudio.api('PATCH', f'/api/storages/export/pachyderm/{fits["id"]}',
                           json={'export_formats_text': 'json'}, expect=200).json()
    assert (fits['export_formats'], fits['export_formats_text']) == (['JSON'], 'JSON')


def test_source_path_layout_pairs_labels_with_images_and_reports_a_collision(labelstudio, ls_pach):
    project, repo, _, tasks = image_project(labelstudio, ls_pach, ['img/x.png', 'img/sub/y.png'])
    other = make_repo(ls_pach)  # a second Source with a file of the same path
    put(ls_pach, other, {'img/x.png': PNG})
    second = labelstudio.create_source(project['id'], repo=other, prefix='img', use_blob_urls=True)
    assert labelstudio.sync(second['id'])['last_sync_count'] == 1
    same_path = sorted(t['id'] for t in labelstudio.tasks(project['id']) if t['data']['pachyderm_path'] == 'img/x.png')
    assert len(same_path) == 2
    owner, loser = same_path
    for task_id in same_path + [tasks['img/sub/y.png']['id']]:
        annotate(labelstudio, task_id, box('cat'))
    labels = make_repo(ls_pach)
    target = labelstudio.create_target(project['id'], repo=labels, prefix='ann', layout='source_path')
    assert target['layout'] == 'source_path' and target['file_format'] == 'task'
    labelstudio.wait_storage(target['id'], target=True)

    done = labelstudio.sync(target['id'], target=True)

    assert listing(ls_pach, labels) == {'ann/img/x.png.json', 'ann/img/sub/y.png.json', f'ann/{loser}.json'}
    assert json.loads(read(ls_pach, labels, 'ann/img/x.png.json'))['id'] == owner
    assert json.loads(read(ls_pach, labels, f'ann/{loser}.json'))['data']['pachyderm_path'] == 'img/x.png'
    assert 'collision' in done['meta']['message'] and '"img/x.png"' in done['meta']['message'], done['meta']
    assert done['meta']['collisions'] == [{'path': 'img/x.png', 'tasks': [owner, loser], 'owner': owner}]

    labelstudio.api('DELETE', f'/api/tasks/{owner}', expect=204)  # the path's next owner moves to it
    moved = labelstudio.sync(target['id'], target=True)
    assert listing(ls_pach, labels) == {'ann/img/x.png.json', 'ann/img/sub/y.png.json'}
    assert json.loads(read(ls_pach, labels, 'ann/img/x.png.json'))['id'] == loser
    assert not moved['meta'].get('collisions')
