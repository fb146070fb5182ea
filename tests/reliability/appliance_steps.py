"""Steps the reliability tests share: what a user does through the Label Studio API and what they
check in Pachyderm with the ordinary SDK. Plain functions over plugins.image's LabelStudioApi."""
import json
import time

from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

SOURCE = "/api/storages/pachyderm"
TARGET = "/api/storages/export/pachyderm"
TEXT_CONFIG = ('<View><Text name="text" value="$text"/><Choices name="label" toName="text">'
               '<Choice value="cat"/><Choice value="dog"/></Choices></View>')
BLOB_CONFIG = ('<View><HyperText name="file" value="$url" valueType="url"/><Choices name="label" toName="file">'
               '<Choice value="cat"/><Choice value="dog"/></Choices></View>')


def create_repo(client: Client, repo: str):
    client.pfs.create_repo(repo=pfs.Repo.from_uri(repo))


def put_files(client: Client, repo: str, files: dict, branch: str = "master", create: bool = True):
    """One commit holding `files` ({path: bytes or str}); the repo is created first when asked."""
    if create:
        create_repo(client, repo)
    with client.pfs.commit(branch=pfs.Branch.from_uri(f"{repo}@{branch}")) as commit:
        for path, data in files.items():
            commit.put_file_from_bytes(path="/" + path.lstrip("/"),
                                       data=data.encode() if isinstance(data, str) else data)


def commits(client: Client, repo: str) -> list:
    try:
        return list(client.pfs.list_commit(repo=pfs.Repo.from_uri(repo)))
    except Exception:  # noqa: BLE001 - no repo or no branch yet: no commits
        return []


def files_at(client: Client, uri: str) -> set[str]:
    return {f.file.path for f in client.pfs.walk_file(file=pfs.File.from_uri(uri))
            if f.file_type == pfs.FileType.FILE}


def read_json(client: Client, repo_at: str, path: str):
    """A JSON file of a commit, e.g. read_json(client, "labels@master", "/annotations/1.json")."""
    with client.pfs.pfs_file(file=pfs.File.from_uri(f"{repo_at}:{path}")) as f:
        return json.loads(f.read())


def create_project(api, title="reliability", config=TEXT_CONFIG) -> dict:
    return api.call("POST", "/api/projects/", json={"title": title, "label_config": config})


def wait_storage(api, path, timeout=300, expect=("completed",)) -> dict:
    """Poll a storage until its job ends; its status must be one of `expect`."""
    deadline = time.monotonic() + timeout
    while True:
        storage = api.call("GET", path)
        done = storage.get("status") in ("completed", "completed_with_errors", "failed")
        if done or time.monotonic() > deadline:
            assert storage.get("status") in expect, storage
            return storage
        time.sleep(0.5)


def add_source(api, project_id, repo, **fields) -> dict:
    body = {"project": project_id, "title": repo, "pach_project": "default", "repo": repo,
            "branch": "master", "use_blob_urls": False, "recursive_scan": True}
    body.update(fields)
    return api.call("POST", SOURCE, json=body)


def add_target(api, project_id, repo, **fields) -> dict:
    body = {"project": project_id, "title": repo, "pach_project": "default", "repo": repo,
            "branch": "master", "prefix": "annotations", "file_format": "annotation"}
    body.update(fields)
    return api.call("POST", TARGET, json=body)


def sync_source(api, storage_id, timeout=600, expect=("completed",)) -> dict:
    api.call("POST", f"{SOURCE}/{storage_id}/sync")
    return wait_storage(api, f"{SOURCE}/{storage_id}", timeout, expect)


def sync_target(api, storage_id, timeout=600, expect=("completed",)) -> dict:
    api.call("POST", f"{TARGET}/{storage_id}/sync")
    return wait_storage(api, f"{TARGET}/{storage_id}", timeout, expect)


def task_count(api, project_id) -> int:
    return api.call("GET", f"/api/projects/{project_id}/")["task_number"]


def choice_result(choice: str, from_name="label", to_name="text") -> list:
    return [{"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [choice]}}]
