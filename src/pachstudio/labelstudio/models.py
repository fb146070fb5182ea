"""Django imports an app's models from `<app>.models`; ours are the storages' (`storage/models.py`)."""

from .storage.models import (  # noqa: F401
    PachydermExportStorage,
    PachydermExportStorageLink,
    PachydermImportStorage,
    PachydermImportStorageLink,
)
