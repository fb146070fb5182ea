"""Where a Target writes a task's labels under the `source_path` layout: `<prefix>/<source path>.json`,
the path the task's file has in its Source repo, so a pipeline can pair image and labels by path.

Rule for a collision (several tasks of the project with the same source path, e.g. two Sources of
different repos holding `a.jpg`): the task with the lowest id owns the path; the others keep their
labels at `<prefix>/<task id>.json`, and every Sync reports the collision. Nothing is overwritten.
Tasks that came from elsewhere (no `pachyderm_path`) are named by id too.
"""

from tasks.models import Task

PATH_FIELD = "pachyderm_path"


def source_path(task) -> str:
    path = (task.data or {}).get(PATH_FIELD) if task is not None else None
    return path.lstrip("/") if isinstance(path, str) and path.strip("/") else ""


def owner(project_id: int, path: str):
    """The id of the task that owns `path` (the lowest id of the project's tasks with that source path)."""
    ids = Task.objects.filter(project_id=project_id, data__pachyderm_path=path).order_by("id").values_list("id")
    first = ids[:1]
    return first[0][0] if first else None


def task_key(storage, task) -> str:
    """The staged file of one task (per-task files)."""
    path = source_path(task) if storage.layout == "source_path" else ""
    if path and owner(task.project_id, path) == task.id:
        return storage.file_key(None, task.id, path)
    return storage.file_key(None, task.id)


def collisions(storage) -> list:
    """Source paths shared by several tasks of the project that have annotations:
    `[{"path", "tasks": [ids], "owner": id}]`, sorted by path."""
    if storage.layout != "source_path":
        return []
    by_path = {}
    rows = Task.objects.filter(project_id=storage.project_id, data__pachyderm_path__isnull=False)
    for task_id, path in rows.values_list("id", "data__pachyderm_path"):
        if isinstance(path, str) and path.strip("/"):
            by_path.setdefault(path.lstrip("/"), []).append(task_id)
    shared = {path: sorted(ids) for path, ids in by_path.items() if len(ids) > 1}
    if not shared:
        return []
    labeled = set(
        Task.objects.filter(id__in=[i for ids in shared.values() for i in ids], annotations__isnull=False)
        .values_list("id", flat=True)
        .distinct()
    )
    found = []
    for path, ids in sorted(shared.items()):
        if any(i in labeled for i in ids[1:]):
            found.append({"path": path, "tasks": ids, "owner": ids[0]})
    return found


def describe_collisions(storage, found: list) -> str:
    if not found:
        return ""
    parts = []
    for item in found[:5]:
        others = ", ".join(storage.file_key(None, i) for i in item["tasks"][1:])
        parts.append(
            f'"{item["path"]}" is the source path of tasks {", ".join(map(str, item["tasks"]))}: '
            f"task {item['owner']} is written at {storage.file_key(None, item['owner'], item['path'])}, "
            f"the others by id ({others})"
        )
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f"{len(found)} source path collision(s), nothing overwritten: " + "; ".join(parts) + more
