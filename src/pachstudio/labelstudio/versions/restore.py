"""Bring a Target's version back into the Label Studio project (issue 17, item 5).

Only the label files that differ between the version and the Target now (DiffFile of the version
against the mount's commit, plus what is staged) are read and compared with the project's
annotations. The plan is what the preview shows; confirming first commits what is staged (a Sync,
so the state before the restore is itself a version), then applies the plan through Label Studio's
ORM: annotations that still exist are updated in place (same id), deleted ones are re-created with
their old id, extra ones are deleted. The Target's save/delete hooks stage those changes like any
other, and the next Sync's description says `restored from <commit>` (the storage's `restore_pending`).
"""

import logging
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from tasks.models import Annotation

from ..storage import background, target_sync
from . import label_diff
from .label_diff import VersionError

logger = logging.getLogger(__name__)


@dataclass
class Plan:
    commit: str
    create: list = field(default_factory=list)  # (task id, annotation dict)
    update: list = field(default_factory=list)  # (annotation id, annotation dict)
    delete: list = field(default_factory=list)  # annotation ids
    per_task: dict = field(default_factory=dict)  # task id -> [{"id", "by", "change"}]
    notes: list = field(default_factory=list)

    def counts(self) -> dict:
        return {"create": len(self.create), "update": len(self.update), "delete": len(self.delete)}


def _current(storage, task_ids, ann_ids) -> dict:
    """{annotation id: (task id, signature, email)} of the project's annotations in scope."""
    from django.db.models import Q

    out = {}
    task_ids, ann_ids = sorted(set(task_ids)), sorted(set(ann_ids))
    for ids, by in ((task_ids, "task_id__in"), (ann_ids, "id__in")):
        for start in range(0, len(ids), 500):
            rows = Annotation.objects.filter(Q(**{by: ids[start : start + 500]}), project=storage.project)
            for a in rows.values("id", "task_id", "result", "was_cancelled", "ground_truth", "completed_by__email"):
                sig = label_diff.signature(a)
                out[a["id"]] = (a["task_id"], sig, a["completed_by__email"])
    return out


def plan(storage, commit: str) -> Plan:
    """What restoring `commit` would create, update and delete in the project now."""
    label_diff.check_version(storage, commit)
    head = label_diff.head_commit(storage)
    rows = label_diff.changed_since(storage, commit, head)
    paths = label_diff.label_paths(storage, [r["path"] for r in rows] + label_diff.staged_paths(storage))
    wanted = label_diff.read(storage, commit, paths)
    desired = {}  # task id -> {annotation id: annotation}
    scope_tasks, scope_anns = set(), set()
    for path in paths:
        task_id, anns = label_diff.parse(storage, wanted.get(path))
        if storage.per_task:
            task_id = task_id if task_id is not None else label_diff.path_task(storage, path)
            if task_id is None:
                continue
            scope_tasks.add(task_id)
            desired.setdefault(task_id, {}).update(anns)
        else:
            ann_id = label_diff.path_annotation(storage, path)
            if ann_id is not None:
                scope_anns.add(ann_id)
            if task_id is not None:
                desired.setdefault(task_id, {}).update(anns)
    current = _current(storage, scope_tasks, scope_anns)
    alive = label_diff.existing_tasks(storage.project_id, desired)
    result = Plan(commit=commit)
    wanted_ids = set()
    for task_id, anns in sorted(desired.items()):
        for ann_id, ann in sorted(anns.items()):
            wanted_ids.add(ann_id)
            now = current.get(ann_id)
            if now is None:
                if task_id not in alive:
                    result.notes.append(f"annotation {ann_id} not restored: its task {task_id} no longer exists")
                    continue
                result.create.append((task_id, ann))
                change = "added"
            elif now[1] != label_diff.signature(ann):
                result.update.append((ann_id, ann))
                change = "changed"
            else:
                continue
            result.per_task.setdefault(task_id, []).append(
                {"id": ann_id, "by": label_diff.email(ann), "change": change}
            )
    for ann_id, (task_id, _, by) in sorted(current.items()):
        if ann_id not in wanted_ids:
            result.delete.append(ann_id)
            result.per_task.setdefault(task_id, []).append({"id": ann_id, "by": by, "change": "deleted"})
    return result


def preview(storage, commit: str) -> dict:
    p = plan(storage, commit)
    _, tasks = label_diff.summarize(storage.project_id, p.per_task)
    return {"commit": commit, "confirm": False, "counts": p.counts(), "tasks": tasks, "notes": p.notes}


def confirm(storage, commit: str, user) -> dict:
    """Commit what is staged, then make the project's annotations those of `commit`. Refused (409)
    while a job of this storage runs; nothing is changed on a refusal."""
    label_diff.check_version(storage, commit)
    with background.exclusive(storage) as free:
        if not free:
            raise VersionError(
                f"a Sync or staging job of {storage.describe()} is running (or queued): the restore would race "
                "it. Wait until the storage card says Completed, then restore again",
                409,
            )
        target_sync.sync_target(storage)  # what is staged becomes a version of its own
        storage.refresh_from_db()
        made = (storage.meta or {}).get("commit")
        p = plan(storage, commit)
        notes = list(p.notes) + apply(storage, p, user)
        if p.create or p.update or p.delete:
            type(storage).objects.filter(id=storage.id).update(restore_pending=commit)
    logger.info("Pachyderm target %s: restored %s (%s)", storage.id, commit, p.counts())
    return {
        "commit": commit,
        "confirm": True,
        "restored_from": commit,
        "committed_first": made,
        "counts": p.counts(),
        "notes": notes,
    }


def apply(storage, p: Plan, user) -> list:
    """The plan through the ORM (so Label Studio's counters and the Target's hooks run)."""
    notes = []
    users = {}
    User = get_user_model()

    def who(ann):
        address = label_diff.email(ann)
        if address not in users:
            users[address] = User.objects.filter(email=address).first() if address else None
        found = users[address]
        if found is None:
            notes.append(
                f"annotation {ann['id']} re-created as {user.email}: its annotator {address or '(unknown)'} "
                "has no account here"
            )
            return user
        return found

    with transaction.atomic():
        for ann_id in p.delete:
            found = Annotation.objects.filter(id=ann_id, project=storage.project).first()
            if found is not None:
                found.delete()
        for ann_id, ann in p.update:
            found = Annotation.objects.filter(id=ann_id, project=storage.project).first()
            if found is None:
                continue
            _fill(found, ann)
            found.save()
        for task_id, ann in p.create:
            taken = Annotation.objects.filter(id=ann["id"]).exists()  # by another project's annotation
            created = Annotation(
                task_id=task_id, project=storage.project, completed_by=who(ann), lead_time=ann.get("lead_time")
            )
            if not taken:
                created.id = ann["id"]
            else:
                notes.append(f"annotation {ann['id']} re-created under a new id: the old one is in use")
            _fill(created, ann)
            created.save()
    return notes


def _fill(annotation, ann: dict) -> None:
    annotation.result = ann.get("result") or []
    annotation.was_cancelled = bool(ann.get("was_cancelled"))
    annotation.ground_truth = bool(ann.get("ground_truth"))
