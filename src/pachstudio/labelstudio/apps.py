import gc

from django.apps import AppConfig


class PachydermStorageConfig(AppConfig):
    """The label keeps `io_storages_` so Label Studio's `Task.get_storage_link` finds our links."""

    name = "pachstudio.labelstudio"
    label = "io_storages_pachyderm"
    verbose_name = "Pachyderm storage"
    default_auto_field = "django.db.models.AutoField"

    def ready(self):
        from django.core.signals import request_started

        from .storage import signals  # (connects the annotation receivers)

        signals.connect_storage_receivers()

        request_started.connect(_resume_once, dispatch_uid="pachyderm-resume-queued-syncs")
        _freeze_what_was_loaded()


def _freeze_what_was_loaded():
    """Moves the objects of the loaded code (Django, Label Studio: half a million) out of the
    collector's reach (`gc.freeze`): they live as long as the process, yet every full collection
    walked them all, and a Sync of 10,000 files allocates enough to trigger several (a fifth of its
    time went there). Frozen in gunicorn's master (preload), they also cost the forked workers no
    copies of the pages a collection would write to."""
    gc.freeze()


def _resume_once(**kwargs):
    """Syncs queued before a restart run when the restarted process serves its first request (not in
    ready(): management commands such as migrate must not start jobs)."""
    from django.core.signals import request_started

    from .storage import background

    request_started.disconnect(dispatch_uid="pachyderm-resume-queued-syncs")
    try:
        background.resume_requests()
    except Exception:  # never fail the request that happened to come first
        import logging

        logging.getLogger(__name__).exception("resuming queued Pachyderm syncs failed")
