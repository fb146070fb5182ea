"""Source sync: turn the files of a repo into tasks, and re-sync only what changed.

The first sync (or one after the storage's filters changed) lists the repo; later ones ask the
mount server for the diff since the last synced commit. Added files become tasks; a changed file
updates its unlabeled tasks; a deleted file removes its unlabeled tasks and marks labeled ones
(`pachyderm_deleted` in the task data), so nothing labeled is lost and nothing is duplicated.
"""

import hashlib
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from django.conf import settings
from django.db import transaction
from io_storages.utils import StorageObject
from tasks.models import Annotation, Task
from webhooks.models import WebhookAction
from webhooks.utils import emit_webhooks_for_instance

from .. import mount_client
from ..mount_client import MountServerError
from . import cluster_checks
from .source_predictions import start_predictions

logger = logging.getLogger(__name__)

BATCH = 500
PATH_FIELD, COMMIT_FIELD = "pachyderm_path", "pachyderm_commit"
DELETED_FIELD, CHANGED_FIELD = "pachyderm_deleted", "pachyderm_changed"


class Timer:
    """Seconds per phase, kept in the storage's meta: where a slow sync spent its time."""

    def __init__(self):
        self.last = time.perf_counter()
        self.laps = {}

    def lap(self, name):
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.last = now


class NotTasks(ValueError):
    """A file in JSON-tasks mode that is not a task or a list of tasks: reported, skipped."""


@dataclass
class Outcome:
    created: int = 0
    updated: int = 0
    removed: int = 0
    marked: int = 0
    errors: list = field(default_factory=list)
    created_keys: list = field(default_factory=list)  # paths this sync made tasks of


def batched(iterable, n=BATCH):
    it = iter(iterable)
    while batch := list(itertools.islice(it, n)):
        yield batch


def scan_signature(storage) -> str:
    """What decides which files are tasks; when it changes, an incremental diff is not enough."""
    parts = [
        storage.project_name,
        storage.repo,
        storage.ref,
        storage.clean_prefix,
        storage.regex_filter or "",
        str(bool(storage.recursive_scan)),
        str(bool(storage.use_blob_urls)),
    ]
    if storage.prediction_suffix():  # predictions beside the data: those files are not tasks
        parts.append("not " + storage.prediction_suffix())
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()


def _with_provenance(item: dict, key: str, commit: str) -> dict:
    item = dict(item)
    if isinstance(item.get("data"), dict):
        item["data"] = {**item["data"], PATH_FIELD: key, COMMIT_FIELD: commit}
    else:
        item.update({PATH_FIELD: key, COMMIT_FIELD: commit})
    return item


def read_task_objects(storage, key: str, commit: str) -> list:
    if storage.use_blob_urls:
        data = {settings.DATA_UNDEFINED_NAME: storage.file_url(key), PATH_FIELD: key, COMMIT_FIELD: commit}
        return [StorageObject(key=key, task_data=data)]
    path = storage.local_path(key)
    size = os.path.getsize(path)
    limit = settings.PACHSTUDIO_MAX_JSON_MB
    if size > limit * 1024 * 1024:
        # Parsing holds the whole file, several times its size, in a Label Studio worker.
        raise NotTasks(
            f'"{key}" is {size / 1048576:,.0f} MB, more than the {limit} MB a JSON tasks file may have '
            "(PACHSTUDIO_MAX_JSON_MB); skipped. Split it into smaller files, or choose "
            '"every file is a source file" to import it as one task.'
        )
    if size == 0:
        raise NotTasks(f'"{key}" is empty, so it holds no task; skipped.')
    try:
        with open(path, "rb") as f:
            value = json.loads(f.read())
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotTasks(
            f'"{key}" is not a JSON file ({exc.__class__.__name__}); skipped. '
            'Choose "every file is a source file" to import such files.'
        ) from None
    if isinstance(value, dict):
        return [StorageObject(key=key, task_data=_with_provenance(value, key, commit))]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [
            StorageObject(key=key, task_data=_with_provenance(v, key, commit), row_index=i) for i, v in enumerate(value)
        ]
    raise NotTasks(f'"{key}" holds JSON that is neither a task (an object) nor a list of tasks; skipped.')


def _task_data(task_data: dict) -> dict:
    return task_data["data"] if isinstance(task_data.get("data"), dict) else task_data


def _pinned(storage, data: dict) -> dict:
    """A labeled task whose file changed or went keeps showing the content its labels refer to:
    its file URLs name the commit it recorded (the mount shows the branch head)."""
    key, commit = data.get(PATH_FIELD), data.get(COMMIT_FIELD)
    if not key or not commit:
        return data
    head_url = storage.file_view_path(key)
    return {
        k: v + "&commit=" + quote(commit) if isinstance(v, str) and v.endswith(head_url) else v for k, v in data.items()
    }


def _is_rich(task_data: dict) -> bool:
    return bool(task_data.get("annotations") or task_data.get("predictions"))


class SourceSync:
    def __init__(self, storage, head: str):
        self.storage = storage
        self.project = storage.project
        self.head = head
        self.Link = storage.links.model
        self.out = Outcome()

    # --- reading -------------------------------------------------------------------------
    def _read(self, key):
        try:
            return read_task_objects(self.storage, key, self.head)
        except NotTasks as exc:
            self.out.errors.append(str(exc))
        except OSError as exc:
            self.out.errors.append(f'"{key}" could not be read ({exc.strerror or exc}); skipped.')
        return None

    def _links(self, keys):
        return list(self.Link.objects.filter(storage=self.storage, key__in=keys).select_related("task"))

    def _labeled(self, task_ids) -> set:
        labeled = set()
        for chunk in batched(task_ids):  # SQLite caps the parameters of one query
            labeled.update(Annotation.objects.filter(task_id__in=chunk).values_list("task_id", flat=True))
        return labeled

    # --- creating ------------------------------------------------------------------------
    def create(self, objects):
        simple = [o for o in objects if not _is_rich(o.task_data)]
        rich = [o for o in objects if _is_rich(o.task_data)]
        for batch in batched(simple):
            self._bulk_create(batch)
        for obj in rich:  # annotations/predictions inside the file: Label Studio's own per-task path
            self._create_with_annotations(obj)

    def _next_inner_id(self):
        last = self.project.tasks.order_by("-inner_id").only("inner_id").first()
        return (last.inner_id + 1) if last and last.inner_id else 1

    def _bulk_create(self, objects):
        with transaction.atomic():
            inner = self._next_inner_id()
            overlap = self.project.maximum_annotations
            tasks = [
                Task(
                    project=self.project,
                    data=_task_data(o.task_data),
                    overlap=overlap,
                    is_labeled=False,
                    inner_id=inner + i,
                    total_predictions=0,
                    total_annotations=0,
                    cancelled_annotations=0,
                    allow_skip=o.task_data.get("allow_skip", True),
                )
                for i, o in enumerate(objects)
            ]
            tasks = Task.objects.bulk_create(tasks)
            self.Link.objects.bulk_create(
                [
                    self.Link(task=t, key=o.key, row_index=o.row_index, storage=self.storage, object_exists=True)
                    for t, o in zip(tasks, objects)
                ]
            )
            if hasattr(self.project, "summary"):
                self.project.summary.update_data_columns(tasks)
        self.out.created_keys.extend(o.key for o in objects)
        self._created([t.id for t in tasks])

    def _create_with_annotations(self, obj):
        from rest_framework.exceptions import ValidationError

        try:
            task = self.storage.add_task(
                self.project,
                self.project.maximum_annotations,
                self._next_inner_id(),
                self.storage,
                obj,
                link_class=self.Link,
            )
        except (ValidationError, ValueError) as exc:
            self.out.errors.append(f'"{obj.key}" task {obj.row_index or 0}: {exc}; skipped.')
            return
        self.out.created_keys.append(obj.key)
        self._created([task.id])

    def _created(self, ids):
        self.out.created += len(ids)
        emit_webhooks_for_instance(self.project.organization, self.project, WebhookAction.TASKS_CREATED, ids)
        self.storage.info_update_progress(last_sync_count=self.out.created)

    # --- deleting ------------------------------------------------------------------------
    def delete_links(self, links):
        labeled = self._labeled([link.task_id for link in links])
        gone = [link.task for link in links if link.task_id not in labeled]
        kept = [link for link in links if link.task_id in labeled]
        if gone:
            with transaction.atomic():
                if hasattr(self.project, "summary"):
                    self.project.summary.remove_data_columns(gone)
                for chunk in batched([t.id for t in gone]):
                    Task.delete_tasks_without_signals(Task.objects.filter(id__in=chunk))
            self.out.removed += len(gone)
        if kept:
            for link in kept:
                link.task.data = {**_pinned(self.storage, link.task.data), DELETED_FIELD: self.head}
                link.object_exists = False
            with transaction.atomic():
                Task.objects.bulk_update([link.task for link in kept], ["data"])
                self.Link.objects.bulk_update(kept, ["object_exists"])
            self.out.marked += len(kept)

    def deleted(self, keys):
        for batch in batched(keys):
            self.delete_links(self._links(batch))

    # --- changing ------------------------------------------------------------------------
    def changed(self, keys):
        for batch in batched(keys):
            links = self._links(batch)
            by_key = {}
            for link in links:
                by_key.setdefault(link.key, {})[link.row_index] = link
            labeled = self._labeled([link.task_id for link in links])
            to_create, to_update, to_relink, orphans = [], [], [], []
            for key in batch:
                objects = self._read(key)
                rows = by_key.get(key, {})
                if objects is None:
                    continue
                for obj in objects:
                    link = rows.pop(obj.row_index, None)
                    if link is None:
                        to_create.append(obj)
                        continue
                    task = link.task
                    data = {k: v for k, v in task.data.items() if k != DELETED_FIELD}
                    if task.id in labeled:
                        data = _pinned(self.storage, data)  # the labels refer to the old content: keep it
                        data[CHANGED_FIELD] = self.head
                    else:
                        data = _task_data(obj.task_data)
                    task.data = data
                    to_update.append(task)
                    if not link.object_exists:
                        link.object_exists = True
                        to_relink.append(link)
                orphans.extend(rows.values())  # rows the new content no longer has
            if to_update or to_relink:
                with transaction.atomic():
                    Task.objects.bulk_update(to_update, ["data"])
                    self.Link.objects.bulk_update(to_relink, ["object_exists"])
                self.out.updated += len(to_update)
            if orphans:
                self.delete_links(orphans)
            self.create(to_create)

    def added(self, keys):
        for batch in batched(keys):
            known = set(self.Link.objects.filter(storage=self.storage, key__in=batch).values_list("key", flat=True))
            fresh = [k for k in batch if k not in known]
            if known:
                self.changed([k for k in batch if k in known])  # re-added or already imported: never a duplicate
            objects = []
            for key in fresh:
                if not self.storage.use_blob_urls:
                    self.storage.info_update_progress(last_sync_count=self.out.created)
                objs = self._read(key)
                if objs:
                    objects.extend(objs)
            self.create(objects)


def _pinging(storage, rows, every=2000):
    """Long listings keep the card's "in progress" alive (Label Studio marks a silent job failed)."""
    for n, row in enumerate(rows):
        if n % every == every - 1:
            storage.info_update_progress(last_sync_count=0)
        yield row


def _diff(storage, keep):
    added, changed, deleted = [], [], []
    sink = {"added": added, "changed": changed, "deleted": deleted}
    for entry in _pinging(storage, mount_client.diff(storage.mount, storage.synced_commit)):
        path = entry["path"].lstrip("/")
        if keep(path) and entry.get("change") in sink:
            sink[entry["change"]].append(path)
    return added, changed, deleted


def _full_scan(storage, keep):
    """List the repo: new paths are added; linked paths no longer listed are deleted."""
    rows = mount_client.files(storage.mount, storage.clean_prefix, storage.recursive_scan)
    listed = [e["path"].lstrip("/") for e in _pinging(storage, rows)]
    listed = [p for p in dict.fromkeys(listed) if keep(p)]
    present = storage.links.filter(object_exists=True).values_list("key", flat=True)
    present = set(present)
    listed_set = set(listed)
    added = [p for p in listed if p not in present]
    deleted = sorted(k for k in present if k not in listed_set)
    return added, [], deleted


def _current_state(storage) -> dict:
    """Move the read-only mount to the branch head; mount first only when it is not there yet."""
    if storage.commit:
        return cluster_checks.ensure_mount(storage)
    try:
        return mount_client.refresh(storage.mount)
    except MountServerError as exc:
        if exc.status != 404:
            raise
    cluster_checks.ensure_mount(storage)
    return mount_client.refresh(storage.mount)


def sync_source(storage):
    if storage.status != storage.Status.QUEUED:
        storage.info_set_queued()
    storage.info_set_in_progress()
    timer = Timer()
    state = _current_state(storage)
    timer.lap("mount")
    head = state.get("commit") or ""
    keep = storage.key_filter()
    signature = scan_signature(storage)
    incremental = bool(storage.synced_commit) and storage.synced_filter == signature
    mode = "incremental" if incremental else "full"
    if not head:
        added = changed = deleted = []
    elif incremental and head == storage.synced_commit:
        added = changed = deleted = []
    elif incremental:
        try:
            added, changed, deleted = _diff(storage, keep)
        except MountServerError as exc:
            if exc.status != 404:
                raise
            mode = "full (last synced commit is gone)"
            added, changed, deleted = _full_scan(storage, keep)
    else:
        added, changed, deleted = _full_scan(storage, keep)
    timer.lap("list" if mode.startswith("full") else "diff")

    predictions = start_predictions(storage)  # read meanwhile, at a new commit of predictions_from
    work = SourceSync(storage, head)
    work.deleted(deleted)
    work.changed(changed)
    work.added(added)
    out = work.out
    timer.lap("tasks")
    if predictions is not None:
        predictions = predictions.finish(out.created_keys)
        timer.lap("predictions")

    from io_storages.base_models import backfill_fsm_states_for_tasks

    backfill_fsm_states_for_tasks(storage.id, out.created, work.Link)
    if out.created or out.removed:
        storage.project.update_tasks_states(
            maximum_annotations_changed=False, overlap_cohort_percentage_changed=False, tasks_number_changed=True
        )
    storage.refresh_from_db()
    storage.synced_commit = head or storage.synced_commit
    storage.synced_filter = signature
    storage.save(update_fields=["synced_commit", "synced_filter"])
    total = work.Link.objects.filter(storage=storage).count()
    timer.lap("finish")
    counts = dict(
        commit=head,
        sync_mode=mode,
        seconds=timer.laps,
        files_added=len(added),
        files_changed=len(changed),
        files_deleted=len(deleted),
        tasks_updated=out.updated,
        tasks_removed=out.removed,
        tasks_marked_deleted=out.marked,
        files_skipped=len(out.errors),
        tasks_existed=max(total - out.created, 0),
    )
    errors = out.errors
    if predictions is not None:
        counts["predictions"] = predictions.meta()
        errors = errors + predictions.errors
    logger.info("Pachyderm source %s synced %s at %s: %s", storage.id, storage.describe(), head, counts)
    if errors:
        storage.info_set_completed_with_errors(last_sync_count=out.created, validation_errors=errors, **counts)
    else:
        storage.info_set_completed(last_sync_count=out.created, **counts)
