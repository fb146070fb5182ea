"""Root URLs: the `pachyderm` storage API and file view in front of Label Studio's own URLs."""

from django.urls import include, path, re_path

from . import ls_frame
from .history import views as history_views
from .pipelines import views as pipeline_views
from .storage import api
from .storage.serializers import PachydermImportStorageSerializer
from .versions import diff_restore_api, page as versions_page
from .versions.api import JobTagsAPI, TagsAPI, VersionsAPI
from .web import files

_storage_urls = [
    re_path(r"^pachyderm/?$", api.PachydermImportStorageListAPI.as_view(), name="storage-pachyderm-list"),
    path("pachyderm/<int:pk>", api.PachydermImportStorageDetailAPI.as_view(), name="storage-pachyderm-detail"),
    path("pachyderm/<int:pk>/sync", api.PachydermImportStorageSyncAPI.as_view(), name="storage-pachyderm-sync"),
    path("pachyderm/validate", api.PachydermImportStorageValidateAPI.as_view(), name="storage-pachyderm-validate"),
    path("pachyderm/form", api.PachydermImportStorageFormLayoutAPI.as_view(), name="storage-pachyderm-form"),
    path(
        "pachyderm/files",
        api.PachydermImportStorageListFilesAPI().as_view(serializer_class=PachydermImportStorageSerializer),
        name="storage-pachyderm-list-files",
    ),
    re_path(r"^export/pachyderm/?$", api.PachydermExportStorageListAPI.as_view(), name="export-storage-pachyderm-list"),
    path(
        "export/pachyderm/<int:pk>",
        api.PachydermExportStorageDetailAPI.as_view(),
        name="export-storage-pachyderm-detail",
    ),
    path(
        "export/pachyderm/<int:pk>/sync",
        api.PachydermExportStorageSyncAPI.as_view(),
        name="export-storage-pachyderm-sync",
    ),
    path(
        "export/pachyderm/validate",
        api.PachydermExportStorageValidateAPI.as_view(),
        name="export-storage-pachyderm-validate",
    ),
    path(
        "export/pachyderm/form", api.PachydermExportStorageFormLayoutAPI.as_view(), name="export-storage-pachyderm-form"
    ),
    # Versions page APIs (issue 17: versions, tags). `/?$`: Label Studio's middleware retries a 404
    # with a slash appended, which would answer its HTML 404 page instead of our JSON one.
    re_path(
        r"^export/pachyderm/(?P<pk>[0-9]+)/versions/?$",
        VersionsAPI.as_view(),
        name="export-storage-pachyderm-versions",
    ),
    re_path(r"^export/pachyderm/(?P<pk>[0-9]+)/tags/?$", TagsAPI.as_view(), name="export-storage-pachyderm-tags"),
    re_path(
        r"^export/pachyderm/(?P<pk>[0-9]+)/job-tags/?$", JobTagsAPI.as_view(), name="export-storage-pachyderm-job-tags"
    ),
    # "/?": a 404 answer on a path without the slash is otherwise replaced by Label Studio's HTML page
    re_path(
        r"^export/pachyderm/(?P<pk>[0-9]+)/diff/?$",
        diff_restore_api.TargetDiffAPI.as_view(),
        name="export-storage-pachyderm-diff",
    ),
    re_path(
        r"^export/pachyderm/(?P<pk>[0-9]+)/restore/?$",
        diff_restore_api.TargetRestoreAPI.as_view(),
        name="export-storage-pachyderm-restore",
    ),
    path(
        "export/pachyderm/<int:pk>/jobs", pipeline_views.TargetJobsAPI.as_view(), name="export-storage-pachyderm-jobs"
    ),
    path(
        "pachyderm/<int:pk>/provenance",
        pipeline_views.SourceProvenanceAPI.as_view(),
        name="storage-pachyderm-provenance",
    ),
    re_path(r"^export/pachyderm/kept/?$", api.KeptMountListAPI.as_view(), name="export-storage-pachyderm-kept"),
    re_path(
        r"^export/pachyderm/kept/(?P<name>[A-Za-z0-9_.@+=-]{1,200})/(?P<action>sync|discard)/?$",
        api.KeptMountSettleAPI.as_view(),
        name="export-storage-pachyderm-kept-settle",
    ),
]

urlpatterns = [
    path("api/storages/", include((_storage_urls, "pachyderm"), namespace="pachyderm")),
    path("data/pachyderm/<int:storage_id>/", files.pachyderm_file, name="pachyderm-file"),
    re_path(r"^pachyderm/targets/(?P<pk>[0-9]+)/versions/?$", versions_page.versions_page, name="pachyderm-versions"),
    re_path(r"^pachyderm/assets/(?P<name>[a-z_]{1,40}\.(?:js|css))$", ls_frame.asset, name="pachyderm-assets"),
    # an optional '/': Label Studio's append-slash middleware re-serves a 404 at the URL with one
    re_path(
        r"^api/pachyderm/tasks/(?P<task_id>[0-9]{1,18})/history/?$",
        history_views.TaskHistoryAPI.as_view(),
        name="task-history-api",
    ),
    re_path(
        r"^pachyderm/tasks/(?P<task_id>[0-9]{1,18})/history/?$",
        history_views.task_history_page,
        name="task-history-page",
    ),
    path("", include("core.urls")),
]
