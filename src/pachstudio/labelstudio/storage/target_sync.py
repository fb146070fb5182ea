"""Target storage: stage every annotation change in the read-write mount at once; Sync commits.

A save writes `<prefix>/<id>.json` in the mount folder (local disk, nothing sent); a delete removes
it. Sync is one `_commit` of everything staged since the last one, so Pachyderm sees exactly one
commit per Sync (none when nothing changed) whose description says what it holds.
"""

import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from tasks.models import Annotation, Task

from .. import mount_client
from . import cluster_checks, target_exports, target_health, target_layout, target_splits

logger = logging.getLogger(__name__)
WRITERS = 8  # staged files written at once through the FUSE mount


_serializers = threading.local()


def _annotation_serializer(storage):
    """Label Studio's storage serializer, built once per thread and storage: building its fields
    (the annotation's and the nested task's) cost more than serializing one annotation, and a save
    serializes one. Its context is the storage's project as of this call."""
    from core.utils.common import load_func

    cache = _serializers.__dict__.setdefault("by_storage", {})
    serializer_class = load_func(settings.STORAGE_ANNOTATION_SERIALIZER)
    serializer = cache.get(storage.id)
    if serializer is None or type(serializer) is not serializer_class:
        serializer = cache[storage.id] = serializer_class(context={})
    serializer._context = {"project": storage.project}
    return serializer


def annotation_content(storage, annotation) -> dict:
    return _annotation_serializer(storage).to_representation(annotation)


def annotation_contents(storage, annotations) -> list:
    serializer = _annotation_serializer(storage)
    return [serializer.to_representation(annotation) for annotation in annotations]


def task_content(storage, task) -> dict:
    from data_export.serializers import ExportDataSerializer

    expand = ["annotations.reviews", "annotations.completed_by"]
    return ExportDataSerializer(task, context={"project": storage.project}, expand=expand).data


def with_split(storage, content: dict, task) -> dict:
    """The task's frozen split in its label file, when the Target has splits (target_splits)."""
    splitter = storage.splitter
    if splitter:
        content[target_splits.FIELD] = splitter.of(task.id, task.data)
    return content


def _write(storage, key: str, content: dict):
    """Its folder is made only when missing: every call through the FUSE mount is a round trip to
    the mount server, and the folder almost always exists (a save writes into it each time)."""
    path = storage.local_path(key)
    data = json.dumps(content, indent=2, default=str)
    try:
        f = open(path, "w")
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        f = open(path, "w")
    with f:
        f.write(data)


def _write_many(storage, items):
    """(key, content) pairs; each write is a few round trips through the FUSE mount, so several
    run at once. The folders are made once."""
    items = list(items)
    for folder in {os.path.dirname(storage.local_path(key)) for key, _ in items}:
        os.makedirs(folder, exist_ok=True)
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        for _ in pool.map(lambda item: _write(storage, item[0], item[1]), items):
            pass


def _remove(storage, key: str):
    try:
        os.remove(storage.local_path(key))
    except FileNotFoundError:
        pass


def write_task(storage, task_id: int, gone_path: str = ""):
    """The task's file, rewritten or removed. `gone_path`: the source path of a task deleted with
    its annotations (its data is gone by now), so its path-named file can go too."""
    task = Task.objects.filter(id=task_id).first()
    if task is None:
        _remove(storage, storage.file_key(None, task_id))
        if gone_path and storage.layout == "source_path":
            heir = target_layout.owner(storage.project_id, gone_path)
            if heir is None:
                _remove(storage, storage.file_key(None, task_id, gone_path))
            else:  # the path's next owner moves from its id-named file to the path
                write_task(storage, heir)
        return
    key = target_layout.task_key(storage, task)
    if not task.annotations.exists():
        _remove(storage, key)
        return
    _write(storage, key, with_split(storage, dict(task_content(storage, task)), task))
    id_key = storage.file_key(None, task_id)
    if key != id_key:  # it may have been named by id while another task owned the path
        _remove(storage, id_key)


def write_annotation(storage, annotation):
    if storage.per_task:
        write_task(storage, annotation.task_id)
    else:
        content = with_split(storage, annotation_content(storage, annotation), annotation.task)
        _write(storage, storage.file_key(annotation.id, annotation.task_id), content)
    _touch_link(storage, annotation.id)


def _touch_link(storage, annotation_id: int):
    """Stamp the annotation's link now (Sync compares the stamps). Not Label Studio's
    ExportStorageLink.create: a get_or_create, which fails for good ("returned more than one")
    once a save and a Sync's bulk linking raced to create the same link; an update never does."""
    Link = storage.links.model
    if not Link.objects.filter(storage=storage, annotation_id=annotation_id).update(updated_at=timezone.now()):
        Link.objects.create(annotation_id=annotation_id, storage=storage, object_exists=True)


def remove_annotation(storage, annotation_id: int, task_id: int, gone_path: str = ""):
    """After the annotation is gone: its file goes (or its task's file is rewritten without it)."""
    try:
        if storage.per_task:
            write_task(storage, task_id, gone_path)
        else:
            _remove(storage, storage.file_key(annotation_id, task_id))
    except OSError as exc:
        key = storage.file_key(annotation_id, task_id)
        logger.warning(
            "Pachyderm target %s: cannot stage delete of %s now (%s); Sync retries it",
            storage.id,
            key,
            exc.strerror or exc,
        )
        with transaction.atomic():
            fresh = storage.__class__.objects.select_for_update().get(id=storage.id)
            fresh.pending_deletes = sorted(set(fresh.pending_deletes or []) | {f"{annotation_id}:{task_id}"})
            fresh.save(update_fields=["pending_deletes"])


def _link_all(storage, annotation_ids):
    """Links in bulk: one staged file per annotation, stamped now (Sync compares the stamps)."""
    Link = storage.links.model
    with transaction.atomic():  # on SQLite a write lock: no annotation is deleted meanwhile
        alive = set(Annotation.objects.filter(id__in=annotation_ids).values_list("id", flat=True))
        existing = set(
            Link.objects.filter(storage=storage, annotation_id__in=alive).values_list("annotation_id", flat=True)
        )
        Link.objects.bulk_create(
            [Link(annotation_id=i, storage=storage, object_exists=True) for i in alive if i not in existing]
        )
        Link.objects.filter(storage=storage, annotation_id__in=existing).update(updated_at=timezone.now())


def stale_annotations(storage) -> list:
    """Ids of the annotations whose file is not staged as they are now: no link, or changed after
    their link's stamp. Asked of the database: a Sync may run every second while people label, and
    fetching every annotation and link of the project into Python each time grows with the project."""
    links = storage.links.model.objects.filter(storage=storage, annotation_id=OuterRef("pk"))
    older = links.filter(updated_at__lt=OuterRef("updated_at"))
    return list(
        Annotation.objects.filter(project=storage.project)
        .filter(~Exists(links) | Exists(older))
        .order_by("id")
        .values_list("id", flat=True)
    )


def stage_pending(storage) -> int:
    """Write what the save hooks could not (annotations made before the storage existed, bulk
    imports that bypass signals, a mount that was down) and retry failed deletes. Only stale files
    are written: annotations with no link, or changed after their link."""
    storage.mount_state = cluster_checks.ensure_mount(storage)
    stale = stale_annotations(storage)
    written_tasks = set()
    phases = dict.fromkeys(("serialize", "write", "link"), 0.0)
    for start in range(0, len(stale), 500):
        chunk = stale[start : start + 500]
        # an annotation deleted since the listing above has no file and gets no link
        t0 = time.perf_counter()
        annotations = list(
            Annotation.objects.filter(id__in=chunk)
            .select_related("task", "completed_by")
            .prefetch_related("task__comment_authors")
        )  # else one query each, in the serializer
        written = [a.id for a in annotations]
        if storage.per_task:
            for annotation in annotations:
                if annotation.task_id not in written_tasks:
                    write_task(storage, annotation.task_id)
                    written_tasks.add(annotation.task_id)
            phases["write"] += time.perf_counter() - t0
        else:
            contents = [
                with_split(storage, c, a.task) for a, c in zip(annotations, annotation_contents(storage, annotations))
            ]
            t1 = time.perf_counter()
            phases["serialize"] += t1 - t0
            _write_many(storage, ((storage.file_key(a.id, a.task_id), c) for a, c in zip(annotations, contents)))
            phases["write"] += time.perf_counter() - t1
        t0 = time.perf_counter()
        _link_all(storage, written)
        phases["link"] += time.perf_counter() - t0
        if storage.status == storage.Status.IN_PROGRESS:
            storage.info_update_progress(last_sync_count=start + len(chunk))  # keeps the card alive
    pending = list(storage.pending_deletes or [])
    for item in pending:
        annotation_id, task_id = (int(x) for x in item.split(":"))
        if storage.per_task:
            write_task(storage, task_id)
        else:
            _remove(storage, storage.file_key(annotation_id, task_id))
    if pending:
        with transaction.atomic():
            fresh = storage.__class__.objects.select_for_update().get(id=storage.id)
            fresh.pending_deletes = [p for p in fresh.pending_deletes or [] if p not in pending]
            fresh.save(update_fields=["pending_deletes"])
    storage.staging_phases = {k: round(v, 2) for k, v in phases.items()}
    return len(stale)


def _ids(storage, paths) -> list:
    """Annotation ids (task ids for per-task files) of label files; a source-path-named file
    counts as its task's. Export files are not labels."""
    prefix = storage.clean_prefix + "/" if storage.clean_prefix else ""
    ids, source_paths = [], []
    for path in paths:
        path = path.lstrip("/")
        if path.startswith(prefix) and path.endswith(".json") and not path.startswith(prefix + "exports/"):
            stem = path[len(prefix) : -len(".json")]
            if stem.isdigit():
                ids.append(int(stem))
            elif storage.layout == "source_path":
                source_paths.append(stem)
    for start in range(0, len(source_paths), 500):
        rows = Task.objects.filter(
            project_id=storage.project_id, data__pachyderm_path__in=source_paths[start : start + 500]
        ).values_list("id", flat=True)
        ids.extend(rows)
    return ids


def describe_commit(storage, staged: dict) -> str:
    """Provenance for the commit: project, counts, annotators, the source commits labeled tasks came from."""
    SourceLink = apps.get_model(storage._meta.app_label, "PachydermImportStorageLink")
    added, changed, deleted = (staged.get(k) or [] for k in ("added", "changed", "deleted"))
    ids = _ids(storage, list(added) + list(changed))
    annotators, task_ids, sources = set(), set(), set()
    for start in range(0, len(ids), 500):  # SQLite caps the parameters of one query
        chunk = ids[start : start + 500]
        by = Q(task_id__in=chunk) if storage.per_task else Q(id__in=chunk)
        rows = Annotation.objects.filter(by, project=storage.project).values_list("task_id", "completed_by__email")
        for task_id, email in rows:
            task_ids.add(task_id)
            if email:
                annotators.add(email)
    task_ids = sorted(task_ids)
    for start in range(0, len(task_ids), 500):
        links = SourceLink.objects.filter(task_id__in=task_ids[start : start + 500])
        for project_name, repo, data in links.values_list("storage__pach_project", "storage__repo", "task__data"):
            commit = (data or {}).get("pachyderm_commit")
            if commit:
                sources.add(f"{project_name or 'default'}/{repo}@{commit}")
    annotators = sorted(annotators)
    project = storage.project
    lines = [
        f'Label Studio project {project.id} "{project.title}": '
        f"{len(added)} added, {len(changed)} changed, {len(deleted)} deleted",
        f"{ANNOTATORS}{', '.join(annotators) or 'none'}",
        f"{SOURCE_COMMITS}{', '.join(sorted(sources)) or 'none'}",
        f'files: one per {storage.file_format} under "{storage.clean_prefix or "/"}" '
        f"(Label Studio target storage {storage.id})",
    ]
    restored = storage.restore_pending
    if restored:  # a restore staged these changes (restore.py); the Versions page reads this line
        lines.append(f"{RESTORED_FROM}{restored}")
    return "\n".join(lines)


# The description's lines as describe_commit writes them and parse_description reads them back.
COUNTS_RE = re.compile(r"^Label Studio project \d+ .*: (\d+) added, (\d+) changed, (\d+) deleted$")
ANNOTATORS = "annotators: "
SOURCE_COMMITS = "source commits: "
HEALTH = "health: "  # the version's health (target_health), one line of JSON
RESTORED_FROM = "restored from "  # a Sync after a restore says which version it brought back
_COMMIT_IN_LINE = re.compile(r"\b[0-9a-f]{32}\b")


def parse_description(text: str) -> dict:
    """What a Sync's commit description says (describe_commit's lines): counts, annotators, source
    commits, and the version a restore brought back. A commit made elsewhere reads as zeros."""
    out = {"added": 0, "changed": 0, "deleted": 0, "annotators": [], "source_commits": [], "restored_from": None}
    out["health"] = None
    for line in (text or "").splitlines():
        line = line.strip()
        counts = COUNTS_RE.match(line)
        if counts:
            out.update(zip(("added", "changed", "deleted"), map(int, counts.groups())))
        for key, prefix in (("annotators", ANNOTATORS), ("source_commits", SOURCE_COMMITS)):
            if line.startswith(prefix) and line[len(prefix) :] != "none":
                out[key] = [item for item in line[len(prefix) :].split(", ") if item]
        if line.startswith(HEALTH):
            try:
                health = json.loads(line[len(HEALTH) :])
            except ValueError:
                health = None
            out["health"] = health if isinstance(health, dict) else None
        if line.startswith(RESTORED_FROM) and out["restored_from"] is None:
            commit = _COMMIT_IN_LINE.search(line)
            out["restored_from"] = commit.group(0) if commit else None
    return out


def _staging(storage) -> int:
    """stage_pending, with a failed write to the mount (EIO while the cluster is down) reported in
    words instead of a Python traceback on the card."""
    try:
        return stage_pending(storage)
    except OSError as exc:
        why = exc.strerror or exc.__class__.__name__
        try:
            cluster_checks.check_cluster()
        except ValidationError as cause:
            detail = cause.detail if isinstance(cause.detail, list) else [cause.detail]
            why = "; ".join(str(d) for d in detail)
        raise mount_client.MountServerError(
            f"labels cannot be staged in {storage.describe()} now ({why}). Nothing is "
            "lost: press Sync again once the cluster answers."
        ) from None


def sync_target(storage):
    if storage.status != storage.Status.QUEUED:
        storage.info_set_queued()
    storage.info_set_in_progress()
    _staging(storage)
    mount_state = getattr(storage, "mount_state", None)
    staged = mount_client.staged(storage.mount)
    restored_from = storage.restore_pending
    description = describe_commit(storage, staged)
    exports = {}
    changes = [p for k in ("added", "changed", "deleted") for p in staged.get(k) or []]
    labels_changed = any(not _is_export(storage, p) for p in changes)
    health = target_health.compute(storage.project_id) if labels_changed else None
    if health is not None:
        description += f"\n{HEALTH}{json.dumps(target_health.for_description(health), separators=(',', ':'))}"
    if (storage.export_formats or storage.splitter) and labels_changed:
        exports = _export(storage, mount_state, health)
        formats = ", ".join(storage.export_formats) or "none (the manifest only)"
        description += f"\nexports: {formats} under {_export_folder(storage)}/ (manifest.json)"
        if storage.splitter:
            description += f"\nsplits: {storage.splits}"
    collided = target_layout.collisions(storage)
    result = mount_client.commit(storage.mount, description)
    commit = result.get("commit")
    storage.refresh_from_db()
    if commit:
        storage.last_commit = commit
        storage.save(update_fields=["last_commit"])
        if restored_from and storage.restore_pending == restored_from:  # this commit holds the restore: said once
            storage.restore_pending = None
            storage.save(update_fields=["restore_pending"])
    counts = {k: result.get(k, 0) for k in ("added", "changed", "deleted")}
    if exports:  # the card counts label files; the export's own are counted apart
        counts = {k: len([p for p in staged.get(k) or [] if not _is_export(storage, p)]) for k in counts}
    logger.info("Pachyderm target %s Sync on %s: commit %s %s", storage.id, storage.describe(), commit, counts)
    notes = (result.get("message") or "", target_layout.describe_collisions(storage, collided))
    message = "; ".join(m for m in notes if m)
    storage.info_set_completed(
        last_sync_count=sum(counts.values()),
        total_annotations=Annotation.objects.filter(project=storage.project).count(),
        commit=commit,
        last_commit=storage.last_commit,
        message=message,
        description=description if commit else "",
        exports=exports or None,
        collisions=collided or None,
        **counts,
    )


def _export_folder(storage) -> str:
    return f"{storage.clean_prefix}/{target_exports.EXPORTS}" if storage.clean_prefix else target_exports.EXPORTS


def _is_export(storage, path: str) -> bool:
    return path.lstrip("/").startswith(_export_folder(storage) + "/")


def _export(storage, mount_state, health=None) -> dict:
    """The exports of the staged labels, written into the mount before the commit; a failing
    converter fails the Sync with its reason and leaves the labels staged."""
    parent = (mount_state or {}).get("commit") or storage.last_commit or ""
    try:
        return target_exports.write_exports(storage, storage.export_formats, parent, health)
    except Exception as exc:
        logger.exception("Pachyderm target %s: export failed", storage.id)
        what = ", ".join(storage.export_formats) or "manifest"
        raise mount_client.MountServerError(
            f"the {what} export failed ({exc.__class__.__name__}: {exc}); nothing "
            "was committed and the labels stay staged: remove the format from the storage, or fix the labels, "
            "and Sync again"
        ) from None


def stage_target(storage):
    """Creation of a Target: stage every existing annotation; the user's Sync commits them."""
    if storage.status != storage.Status.QUEUED:
        storage.info_set_queued()
    storage.info_set_in_progress()
    staged = _staging(storage)
    storage.info_set_completed(
        last_sync_count=0,
        staged=staged,
        last_commit=storage.last_commit,
        total_annotations=Annotation.objects.filter(project=storage.project).count(),
        message=f"{staged} annotation files staged; Sync commits them",
        phases=getattr(storage, "staging_phases", None),
    )
