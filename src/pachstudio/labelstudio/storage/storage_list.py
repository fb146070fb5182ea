"""`settings.GET_STORAGE_LIST`: Label Studio's storage types plus `pachyderm`."""

from io_storages.functions import get_storage_list as label_studio_storage_list


def get_storage_list():
    from .api import PachydermExportStorageListAPI, PachydermImportStorageListAPI

    return label_studio_storage_list() + [
        {
            "name": "pachyderm",
            "title": "Pachyderm",
            "import_list_api": PachydermImportStorageListAPI,
            "export_list_api": PachydermExportStorageListAPI,
        }
    ]
