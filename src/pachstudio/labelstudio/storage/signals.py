"""Annotation save/delete -> the Target's file in the read-write mount changes at once; a deleted
storage gives its mount back (`release`).

Work runs after the database commit, so a rolled-back save never reaches the mount. A failure
here never fails the annotation: it is logged and the next Sync writes what is missing.
"""

import logging

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_delete
from django.dispatch import receiver
from tasks.models import Annotation

logger = logging.getLogger(__name__)


def _targets(project_id):
    from .models import PachydermExportStorage

    return list(PachydermExportStorage.objects.filter(project_id=project_id))


@receiver(post_save, sender=Annotation)
def stage_saved_annotation(sender, instance, **kwargs):
    storages = _targets(instance.project_id)
    if not storages:
        return
    annotation_id = instance.id

    def write():
        from .target_sync import write_annotation

        annotation = Annotation.objects.filter(id=annotation_id).select_related("task").first()
        if annotation is None:
            return
        for storage in storages:
            try:
                write_annotation(storage, annotation)
            except Exception as exc:
                logger.warning(
                    "Pachyderm target %s: annotation %s not staged now (%s); Sync writes it",
                    storage.id,
                    annotation_id,
                    exc,
                )

    transaction.on_commit(write)


@receiver(pre_delete, sender=Annotation)
def remember_source_path(sender, instance, **kwargs):
    """A task deleted with its annotations is gone by their post_delete; a target laid out by
    source path still needs that path to remove (or hand over) the task's file."""
    if any(s.layout == "source_path" for s in _targets(instance.project_id)):
        from tasks.models import Task

        path = Task.objects.filter(id=instance.task_id).values_list("data__pachyderm_path", flat=True).first()
        instance._pachyderm_path = path if isinstance(path, str) else ""


@receiver(post_delete, sender=Annotation)
def stage_deleted_annotation(sender, instance, **kwargs):
    storages = _targets(instance.project_id)
    if not storages:
        return
    annotation_id, task_id = instance.id, instance.task_id
    gone_path = getattr(instance, "_pachyderm_path", "")

    def remove():
        from .target_sync import remove_annotation

        for storage in storages:
            remove_annotation(storage, annotation_id, task_id, gone_path if isinstance(gone_path, str) else "")

    transaction.on_commit(remove)


def _release_mount(sender, instance, **kwargs):
    """After the delete commits: the mount goes unless another storage uses it or it holds staged
    labels (then it is kept, and the notice is left on the instance for the API's answer)."""

    def release():
        from .release import release as give_back

        instance.pachyderm_notice = give_back(instance)

    transaction.on_commit(release)


def connect_storage_receivers():
    from .models import PachydermExportStorage, PachydermImportStorage

    for model in (PachydermImportStorage, PachydermExportStorage):
        post_delete.connect(_release_mount, sender=model, dispatch_uid=f"pachyderm-release-{model.__name__}")
