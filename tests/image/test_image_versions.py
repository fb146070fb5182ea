"""Label versions on the built image (issue 17): two Target Syncs are two versions; the REST API lists
them, compares them, tags one, tells a task's history and restores the first, while the
label-studio-sdk changes and reads the annotations and the pachyderm-sdk reads the commits back."""
import json

import pytest
from label_studio_sdk.client import LabelStudio
from pachyderm_sdk.api import pfs

from plugins.image import (
    ADMIN,
    TOKEN,
    files_at,
    import_and_label,
    put_source_files,
    sdk_client,
    target_sync_makes_one_commit,
    wait_storage,
)

pytestmark = pytest.mark.image


def choice(annotation) -> str:
    """The chosen class of an annotation, from the REST API (a dict) or the label-studio-sdk (a model)."""
    result = annotation["result"] if isinstance(annotation, dict) else annotation.result
    return result[0]["value"]["choices"][0]


def label_file(client, repo, commit, annotation_id) -> dict:
    uri = f"{repo}@{commit}:/annotations/{annotation_id}.json"
    return json.loads(client.pfs.pfs_file(file=pfs.File.from_uri(uri)).read())


def test_versions_diff_tag_history_and_restore_on_real_commits(appliance_factory, data_volume):
    app = appliance_factory(volume=data_volume).wait_healthy()
    client = sdk_client(app.pachd_address)
    put_source_files(client)
    api = app.api()
    project, target, annotations = import_and_label(api, client)
    base = f"/api/storages/export/pachyderm/{target['id']}"
    v1 = target_sync_makes_one_commit(api, client, target, annotations).commit.id

    # Round two with Label Studio's own SDK: one label changed, one annotation deleted.
    ls = LabelStudio(base_url=app.url, api_key=TOKEN)
    changed, kept, deleted = annotations
    ls.annotations.update(id=changed["id"], result=[dict(changed["result"][0], value={"choices": ["dog"]})])
    ls.annotations.delete(id=deleted["id"])
    api.call("POST", f"{base}/sync")
    v2 = wait_storage(api, base)["last_commit"]
    assert v2 and v2 != v1

    versions = api.call("GET", f"{base}/versions?page=1&page_size=50")
    newest, older = versions["versions"][:2]
    assert (newest["commit"], older["commit"]) == (v2, v1)
    assert (newest["added"], newest["changed"], newest["deleted"]) == (0, 1, 1)
    assert (older["added"], older["changed"], older["deleted"]) == (3, 0, 0)
    assert newest["annotators"] == [ADMIN] and versions["staged"] == 0

    diff = api.call("GET", f"{base}/diff?from={v1}&to={v2}")
    by_task = {t["task_id"]: t for t in diff["tasks"]}
    assert by_task[changed["task"]]["change"] == "changed" and by_task[deleted["task"]]["change"] == "lost"
    assert kept["task"] not in by_task
    assert by_task[changed["task"]]["annotations"] == [{"id": changed["id"], "by": ADMIN, "change": "changed"}]

    tag = api.call("POST", f"{base}/tags", json={"name": "before-review", "commit": v1})
    assert tag == {"name": "before-review", "commit": v1}
    head = client.pfs.inspect_branch(branch=pfs.Branch.from_uri("labels@before-review")).head
    assert head.id == v1, "a tag is a Pachyderm branch at that commit"
    refused = api.call("POST", f"{base}/tags", json={"name": "before review", "commit": v1}, expect=(400,))
    assert refused["detail"], "the refusal says why"
    assert "before review" not in {b.branch.name for b in client.pfs.list_branch(repo=pfs.Repo.from_uri("labels"))}

    history = api.call("GET", f"/api/pachyderm/tasks/{changed['task']}/history")
    [entry] = [a for a in history["annotations"] if a["id"] == changed["id"]]
    assert entry["first_version"] == v1 and entry["by"] == ADMIN
    assert [(v["commit"], v["change"]) for v in entry["versions"]] == [(v1, "added"), (v2, "changed")]
    assert history["source"]["path"].endswith(".json") and history["source"]["commit"]

    preview = api.call("POST", f"{base}/restore", json={"commit": v1, "confirm": False})
    assert preview["counts"] == {"create": 1, "update": 1, "delete": 0}
    assert {a.id for a in ls.annotations.list(id=deleted["task"])} == set(), "a preview changes nothing"
    done = api.call("POST", f"{base}/restore", json={"commit": v1, "confirm": True})
    assert done["restored_from"] == v1 and done["committed_first"] is None  # nothing was staged
    assert [choice(a) for a in ls.annotations.list(id=changed["task"])] == [choice(changed)]
    assert [choice(a) for a in ls.annotations.list(id=deleted["task"])] == [choice(deleted)]

    # The restore is staged like any change: the next Sync is a version that says where it came from.
    api.call("POST", f"{base}/sync")
    v3 = wait_storage(api, base)["last_commit"]
    assert v3 not in (v1, v2)
    info = client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"labels@{v3}"))
    assert f"restored from {v1}" in info.description
    assert files_at(client, f"labels@{v3}:/") == files_at(client, f"labels@{v1}:/")
    for a in annotations:
        restored, first = (label_file(client, "labels", v, a["id"]) for v in (v3, v1))
        assert restored["result"] == first["result"]
