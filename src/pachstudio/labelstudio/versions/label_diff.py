"""What changed between two versions of a Target (or a version and what is staged now), in Label
Studio's terms: tasks that gained, changed or lost annotations, and by whom.

Pachyderm's DiffFile (through the mount server) names the label files that differ; only those are
read, on the side(s) where they exist (an added annotation file whose annotation is still in Label
Studio not even that), so the cost follows the change and not the size of the versions. An
annotation counts as changed when its result, `was_cancelled` or `ground_truth` differs (a file
rewritten with the same labels is no change a person sees).
"""

import json
import os

from tasks.models import Annotation, Task

from .. import mount_client
from ..mount_client import MountServerError
from ..storage import cluster_checks, target_layout

STAGED = "staged"


class VersionError(Exception):
    """A refused request: `status` 400/404/409 and a message saying what to do."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def check_version(storage, commit, field: str = "commit") -> dict:
    """The commit's info when it is a version of this Target (a commit of its repo's branch)."""
    if not isinstance(commit, str) or not commit:
        raise VersionError(f"{field}: give the id of a commit of {storage.describe()} (see the Versions page)")
    try:
        return mount_client.branch_commit(storage.project_name, storage.repo, storage.ref, commit)
    except MountServerError as exc:
        if exc.status in (400, 404):
            raise VersionError(
                f"{field}: {commit[:100]} is not a version of this Target ({storage.describe()}): {exc}; "
                "pick a commit listed on its Versions page"
            ) from None
        raise


def label_paths(storage, paths) -> list:
    """The label files among `paths` (under the prefix, `.json`, not the exports folder)."""
    prefix = storage.clean_prefix + "/" if storage.clean_prefix else ""
    exports = prefix + "exports/"
    found = set()
    for path in paths:
        path = path.lstrip("/")
        if path.startswith(prefix) and path.endswith(".json") and not path.startswith(exports):
            found.add(path)
    return sorted(found)


def parse(storage, text):
    """(task id, {annotation id: annotation}) of one label file's text; (None, {}) when absent."""
    if text is None:
        return None, {}
    try:
        content = json.loads(text)
    except ValueError:
        return None, {}
    if not isinstance(content, dict):
        return None, {}
    if storage.per_task:
        task_id, annotations = content.get("id"), content.get("annotations") or []
    else:
        task = content.get("task")
        task_id, annotations = (task.get("id") if isinstance(task, dict) else task), [content]
    found = {a["id"]: a for a in annotations if isinstance(a, dict) and isinstance(a.get("id"), int)}
    return task_id if isinstance(task_id, int) else None, found


def email(annotation: dict):
    by = annotation.get("completed_by")
    return by.get("email") if isinstance(by, dict) else None


def signature(annotation: dict) -> str:
    return json.dumps(
        [annotation.get("result"), bool(annotation.get("was_cancelled")), bool(annotation.get("ground_truth"))],
        sort_keys=True,
    )


def task_entry(project_id: int, task_id: int, annotations: list) -> dict:
    """One task of a diff: gained (only additions), lost (only deletions), else changed."""
    changes = {a["change"] for a in annotations}
    kind = "gained" if changes == {"added"} else "lost" if changes == {"deleted"} else "changed"
    return {
        "task_id": task_id,
        "task_url": f"/projects/{project_id}/data?task={task_id}",
        "change": kind,
        "annotations": sorted(annotations, key=lambda a: a["id"]),
    }


def summarize(project_id: int, per_task: dict) -> tuple:
    tasks = [task_entry(project_id, t, anns) for t, anns in sorted(per_task.items()) if anns]
    counts = {k: sum(1 for t in tasks if t["change"] == k) for k in ("gained", "changed", "lost")}
    return counts, tasks


def compare(storage, paths, old_text: dict, new_text: dict) -> dict:
    """{task id: [{"id", "by", "change"}]} of the annotations that differ between the two sides."""
    per_task = {}
    for path in paths:
        old_task, old = parse(storage, old_text.get(path))
        new_task, new = parse(storage, new_text.get(path))
        task_id = new_task if new_task is not None else old_task
        if task_id is None:
            continue
        rows = per_task.setdefault(task_id, [])
        for ann_id in sorted(set(old) | set(new)):
            if ann_id not in old:
                rows.append({"id": ann_id, "by": email(new[ann_id]), "change": "added"})
            elif ann_id not in new:
                rows.append({"id": ann_id, "by": email(old[ann_id]), "change": "deleted"})
            elif signature(old[ann_id]) != signature(new[ann_id]):
                rows.append({"id": ann_id, "by": email(new[ann_id]), "change": "changed"})
    return per_task


def head_commit(storage) -> str:
    """The commit the Target's read-write mount sits on (what is staged is layered over it)."""
    return (cluster_checks.ensure_mount(storage) or {}).get("commit") or ""


def staged_paths(storage) -> list:
    staged = mount_client.staged(storage.mount)
    return [p for k in ("added", "changed", "deleted") for p in staged.get(k) or []]


def read_staged(storage, paths) -> dict:
    """The texts of label files as staged now (the mount folder), None when absent."""
    out = {}
    for path in paths:
        try:
            with open(storage.local_path(path)) as f:
                out[path] = f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            out[path] = None
    return out


def read(storage, commit: str, paths) -> dict:
    return mount_client.read_files(storage.project_name, storage.repo, commit, paths)


def changed_since(storage, commit: str, head: str) -> list:
    """Rows of DiffFile between `commit` and `head` (head as the new side: cheap when `commit` is an
    ancestor of it)."""
    if not head or head == commit:
        return []
    return mount_client.diff_commits(storage.project_name, storage.repo, commit, head, storage.clean_prefix)


def diff(storage, old: str, new: str) -> dict:
    """The contract's diff answer between version `old` and version `new` (or "staged")."""
    check_version(storage, old, "from")
    if new == STAGED:
        head = head_commit(storage)
        rows = changed_since(storage, old, head)
        paths = label_paths(storage, [r["path"] for r in rows] + staged_paths(storage))
        old_text = read(storage, old, paths)
        new_text = read_staged(storage, paths)
    else:
        check_version(storage, new, "to")
        rows = mount_client.diff_commits(storage.project_name, storage.repo, old, new, storage.clean_prefix)
        keep = set(label_paths(storage, [r["path"] for r in rows]))
        rows = [r for r in rows if r["path"] in keep]
        known = added_from_database(storage, rows)
        rows = [r for r in rows if r["path"] not in known["paths"]]
        paths = [r["path"] for r in rows]
        old_text = read(storage, old, [r["path"] for r in rows if r["change"] != "added"])
        new_text = read(storage, new, [r["path"] for r in rows if r["change"] != "deleted"])
    per_task = compare(storage, paths, old_text, new_text)
    if new != STAGED:
        for task_id, row in known["rows"]:
            per_task.setdefault(task_id, []).append(row)
    counts, tasks = summarize(storage.project_id, per_task)
    return {"from": old, "to": new, "counts": counts, "tasks": tasks}


def added_from_database(storage, rows) -> dict:
    """An added one-annotation file needs no read while its annotation is still in Label Studio:
    its task and annotator never change after creation. So a diff of a round of new labels costs
    DiffFile and one query, whatever its size. Other files (per-task files, changes, deletions,
    annotations deleted since) are read."""
    if storage.per_task:
        return {"paths": set(), "rows": []}
    ids = {}
    for r in rows:
        annotation_id = path_annotation(storage, r["path"]) if r["change"] == "added" else None
        if annotation_id is not None:
            ids[annotation_id] = r["path"]
    found = {"paths": set(), "rows": []}
    wanted = sorted(ids)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        query = Annotation.objects.filter(project_id=storage.project_id, id__in=chunk)
        for annotation_id, task_id, by in query.values_list("id", "task_id", "completed_by__email"):
            found["paths"].add(ids[annotation_id])
            found["rows"].append((task_id, {"id": annotation_id, "by": by, "change": "added"}))
    return found


def path_task(storage, path: str):
    """The task a per-task label file names (by id, or by its source path); None when unknown."""
    prefix = storage.clean_prefix + "/" if storage.clean_prefix else ""
    stem = path[len(prefix) : -len(".json")]
    if stem.isdigit():
        return int(stem)
    if storage.layout == "source_path":
        return target_layout.owner(storage.project_id, stem)
    return None


def path_annotation(storage, path: str):
    stem = os.path.basename(path)[: -len(".json")]
    return int(stem) if stem.isdigit() else None


def existing_tasks(project_id: int, task_ids) -> set:
    ids = sorted(set(task_ids))
    found = set()
    for start in range(0, len(ids), 500):
        found.update(
            Task.objects.filter(project_id=project_id, id__in=ids[start : start + 500]).values_list("id", flat=True)
        )
    return found
