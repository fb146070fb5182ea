"""Per-task label history ("who labeled that image?"): a task's annotations across the versions
its project's Pachyderm Targets committed, and the source file@commit the task came from.

The mount server answers which commits touched the task's label files (and their contents then);
this module only reads those contents: which annotation each version held, and who had saved it.
Which files are the task's follows the Target's `file_format` and `layout` (target_layout). In
the `annotation` format the files are named by annotation id, so an annotation deleted from Label
Studio since has no name left to look for: its versions are not listed (in the `task` format and
the `source_path` layout the task's file lists every annotation of each version, deleted ones too).
"""

import itertools
import json
from typing import Optional

from django.apps import apps
from users.models import User

from .. import mount_client
from ..storage import target_layout
from ..storage.source_sync import COMMIT_FIELD, PATH_FIELD

NO_TARGET = "no label version of this task yet: the project has no Pachyderm Target storage"
NO_VERSION = (
    "no label version of this task yet: none of the project's Pachyderm Targets has committed a label "
    "of it (Sync commits what is staged)"
)


def task_paths(storage, task) -> list:
    """The task's label files in this Target (every name they may have had under its layout)."""
    if storage.per_task:
        keys = {storage.file_key(None, task.id)}
        path = target_layout.source_path(task)
        if storage.layout == "source_path" and path:
            keys.add(storage.file_key(None, task.id, path))
        return sorted(keys)
    return sorted(storage.file_key(i, task.id) for i in task.annotations.values_list("id", flat=True))


def _annotations_in(text: Optional[str], per_task: bool, task_id: int) -> dict:
    """{annotation id: annotation} a label file holds for this task (a path-named file may be
    another task's when several share a source path)."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    if per_task:
        if data.get("id") != task_id:
            return {}
        rows = data.get("annotations") or []
        return {a["id"]: a for a in rows if isinstance(a, dict) and isinstance(a.get("id"), int)}
    task = data.get("task")
    owner = task.get("id") if isinstance(task, dict) else task
    if owner not in (task_id, None) or not isinstance(data.get("id"), int):
        return {}
    return {data["id"]: data}


def _fingerprint(annotation: dict) -> str:
    keys = ("result", "updated_at", "was_cancelled", "ground_truth")
    return json.dumps({k: annotation.get(k) for k in keys}, sort_keys=True, default=str)


class _Emails:
    """User ids to emails, each looked up once."""

    def __init__(self):
        self.known = {}

    def of(self, user) -> Optional[str]:
        if isinstance(user, dict):
            return user.get("email")
        if isinstance(user, int):
            if user not in self.known:
                self.known[user] = User.objects.filter(id=user).values_list("email", flat=True).first()
            return self.known[user]
        return None


def _versions_of(storage, task, answer: dict, emails: _Emails) -> tuple:
    """({annotation id: [version...]}, {annotation id: its last content seen}) from one Target's
    file changes (commit-major, oldest first)."""
    files, state, out, seen = {}, {}, {}, {}
    for commit, changes in itertools.groupby(answer["changes"], key=lambda c: c["commit"]):
        changes = list(changes)
        for ch in changes:
            if ch["change"] == "deleted":
                files[ch["path"]] = {}
                continue
            text = ch.get("content")
            if text is None:  # too big to come inline
                raw = mount_client.file_at(storage.project_name, storage.repo, commit, ch["path"])
                text = raw.decode("utf-8", errors="replace")
            files[ch["path"]] = _annotations_in(text, storage.per_task, task.id)
        now = {}
        for held in files.values():
            now.update(held)
        version = {
            "commit": commit,
            "finished": changes[0]["finished"],
            "target": storage.id,
            "repo": storage.describe(),
        }
        for aid, ann in now.items():
            if aid not in state:
                out.setdefault(aid, []).append({**version, "change": "added", "by": emails.of(ann.get("completed_by"))})
            elif _fingerprint(ann) != _fingerprint(state[aid]):
                by = emails.of(ann.get("updated_by")) or emails.of(ann.get("completed_by"))
                out.setdefault(aid, []).append({**version, "change": "changed", "by": by})
        for aid in state.keys() - now.keys():
            out.setdefault(aid, []).append({**version, "change": "deleted", "by": None})  # LS keeps no deleter
        state = now
        seen.update(now)
    return out, seen


def source_of(task) -> Optional[dict]:
    """The Pachyderm Source file@commit the task came from, or None."""
    Link = apps.get_model("io_storages_pachyderm", "PachydermImportStorageLink")
    link = Link.objects.filter(task=task).select_related("storage").first()
    if link is None:
        return None
    data = task.data or {}
    storage = link.storage
    return {
        "repo": f"{storage.project_name}/{storage.repo}",
        "path": data.get(PATH_FIELD) or link.key,
        "commit": data.get(COMMIT_FIELD),
        "storage": storage.id,
    }


def task_history(task) -> dict:
    Target = apps.get_model("io_storages_pachyderm", "PachydermExportStorage")
    emails = _Emails()
    targets, versions, latest = [], {}, {}
    for storage in Target.objects.filter(project_id=task.project_id).order_by("id"):
        summary = {"id": storage.id, "title": storage.title, "repo": storage.describe(), "commits": 0}
        targets.append(summary)
        paths = task_paths(storage, task)
        if not paths:
            continue
        try:
            answer = mount_client.file_history(storage.project_name, storage.repo, storage.ref, paths, contents=True)
        except mount_client.MountServerError as exc:
            if exc.status != 404:
                raise
            summary["note"] = f"nothing committed yet ({exc})"
            continue
        summary["commits"] = answer["commits"]
        found_versions, seen = _versions_of(storage, task, answer, emails)
        for aid, found in found_versions.items():
            versions.setdefault(aid, []).extend(found)
        latest.update(seen)
    annotations = []
    for aid in sorted(versions):
        found = sorted(versions[aid], key=lambda v: (v["finished"] or "", v["target"]))
        added = [v for v in found if v["change"] == "added"]
        annotations.append(
            {
                "id": aid,
                "by": emails.of((latest.get(aid) or {}).get("completed_by")),
                "first_version": added[0]["commit"] if added else None,
                "versions": found,
            }
        )
    message = None
    if not annotations:
        message = NO_TARGET if not targets else NO_VERSION
    return {
        "task_id": task.id,
        "project": task.project_id,
        "task_url": f"/projects/{task.project_id}/data?task={task.id}",
        "source": source_of(task),
        "targets": targets,
        "annotations": annotations,
        "message": message,
    }
