from django.apps import AppConfig


class PachydermStorageConfig(AppConfig):
    """The label keeps `io_storages_` so Label Studio's `Task.get_storage_link` finds our links."""

    name = 'pachstudio.labelstudio'
    label = 'io_storages_pachyderm'
    verbose_name = 'Pachyderm storage'
    default_auto_field = 'django.db.models.AutoField'

    def ready(self):
        from . import signals  # noqa: F401  (connects the annotation receivers)
