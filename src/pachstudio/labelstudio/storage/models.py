"""The Pachyderm Source and Target storages, shaped like Label Studio's own `io_storages/<provider>`.

The models hold configuration and status only; the work lives in `source_sync`, `target_sync`
and `cluster_checks`, and every cluster access goes through the mount server (`mount_client`).
"""

import logging
from typing import Optional
from urllib.parse import quote

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from io_storages.base_models import (
    ExportStorage,
    ExportStorageLink,
    ImportStorage,
    ImportStorageLink,
    ProjectStorageMixin,
)

from ... import rules
from .. import mount_client
from . import background, cluster_checks, target_splits
from .paths import KeyFilter, mount_name, normalize_prefix, safe_join
from .source_sync import read_task_objects, sync_source
from .target_sync import stage_target, sync_target, write_annotation

logger = logging.getLogger(__name__)


def mount_folder(name: str) -> str:
    return f"{settings.PACHSTUDIO_MOUNT_DIR.rstrip('/')}/{name}"


class PachydermMixin(models.Model):
    pach_project = models.CharField(
        _("Pachyderm project"),
        max_length=256,
        blank=True,
        default="",
        help_text='Pachyderm project; empty means the cluster context\'s project, else "default"',
    )
    repo = models.CharField(_("repo"), max_length=256, help_text="Pachyderm repo")
    branch = models.CharField(_("branch"), max_length=256, blank=True, default="master", help_text="Branch")
    prefix = models.TextField(_("prefix"), null=True, blank=True, help_text="Folder inside the repo")

    mount_mode = "ro"

    class Meta:
        abstract = True

    @property
    def project_name(self) -> str:
        return self.pach_project or "default"

    @property
    def clean_prefix(self) -> str:
        return normalize_prefix(self.prefix)

    @property
    def ref(self) -> str:
        return self.branch or "master"

    @property
    def mount(self) -> str:
        return mount_name(self.mount_mode, self.project_name, self.repo, self.ref)

    def mount_spec(self) -> dict:
        return {
            "name": self.mount,
            "project": self.project_name,
            "repo": self.repo,
            "branch": self.branch or "master",
            "mode": self.mount_mode,
        }

    @property
    def mount_root(self) -> str:
        return mount_folder(self.mount)

    def local_path(self, path: str) -> str:
        return safe_join(self.mount_root, path)

    def describe(self, ref: str = "") -> str:
        return f"{self.project_name}/{self.repo}@{ref or self.ref}"

    def health_check(self):
        """Label Studio's storage list marks a job failed once it has not pinged for 25 s; ours may
        wait that long on the cluster (a big upload, a cut network) and still be alive: the job
        lock says whether it is."""
        if self.status in (self.Status.QUEUED, self.Status.IN_PROGRESS) and background.job_running(self):
            return
        super().health_check()

    def save(self, *args, **kwargs):
        """While a Sync waits for the running job, the card keeps saying so: whatever the running
        job writes (in progress, its counts, completed, failed), the row stays queued with meta.queued."""
        super().save(*args, **kwargs)
        fields = kwargs.get("update_fields")
        if self.pk and (fields is None or {"status", "meta"} & set(fields)) and background.queued_method(self):
            background.mark_queued(self)


class PachydermImportStorageBase(PachydermMixin, ImportStorage):
    url_scheme = "pach"

    commit = models.CharField(
        _("commit"), max_length=64, null=True, blank=True, help_text="Pin this commit instead of following the branch"
    )
    regex_filter = models.TextField(
        _("regex_filter"), null=True, blank=True, help_text="Regex on the path (or the file name) of files to import"
    )
    use_blob_urls = models.BooleanField(
        _("use_blob_urls"), default=False, help_text="Every file is a source file (else: JSON tasks)"
    )
    recursive_scan = models.BooleanField(
        _("recursive scan"), default=False, help_text="Import files from sub-folders of the prefix too"
    )
    synced_commit = models.CharField(
        _("synced commit"),
        max_length=64,
        null=True,
        blank=True,
        help_text="Commit the last successful sync read; the next one starts there",
    )
    synced_filter = models.CharField(
        _("synced filter"),
        max_length=64,
        null=True,
        blank=True,
        help_text="Signature of the filters of the last sync; a change means a full scan",
    )
    predictions_from = models.CharField(
        _("predictions from"),
        max_length=256,
        blank=True,
        default="",
        help_text="[project/]repo@branch whose <path>.json files hold predictions for the tasks from <path>",
    )
    predictions_commit = models.CharField(
        _("predictions commit"),
        max_length=64,
        null=True,
        blank=True,
        help_text="Commit of predictions_from whose predictions the last Sync attached",
    )
    predictions_version = models.TextField(
        _("predictions version"),
        null=True,
        blank=True,
        help_text="The model version this Source last made the project's; a person who picks another keeps theirs",
    )

    class Meta:
        abstract = True

    @property
    def ref(self) -> str:
        return self.commit or self.branch or "master"

    def mount_spec(self) -> dict:
        spec = super().mount_spec()
        if self.commit:
            spec["commit"] = self.commit
        return spec

    def predictions_branch(self) -> Optional[tuple[str, str, str]]:
        """(project, repo, branch) of `predictions_from` (its project defaults to this Source's)."""
        if not self.predictions_from:
            return None
        project, repo, branch = rules.parse_branch_uri(self.predictions_from)
        return project or self.project_name, repo, branch

    def prediction_suffix(self) -> str:
        """Predictions kept beside the data (the same repo and branch) are not tasks: a blob
        Source's `*.json` files, a JSON-tasks Source's `*.json.json` (the predictions of `t.json`)."""
        try:
            if self.predictions_branch() != (self.project_name, self.repo, self.branch or "master"):
                return ""
        except ValueError:  # not a branch: the form says so (serializers, cluster_checks)
            return ""
        return ".json" if self.use_blob_urls else ".json.json"

    def key_filter(self) -> KeyFilter:
        return KeyFilter(self.clean_prefix, self.regex_filter, self.recursive_scan, self.prediction_suffix())

    def validate_connection(self, client=None):
        cluster_checks.check_source(self)

    # Label Studio's preview (`POST .../files`) and generic scan hooks.
    def iter_objects(self):
        keep = self.key_filter()
        for entry in mount_client.files(self.mount, self.clean_prefix, self.recursive_scan):
            if keep(entry["path"]):
                yield entry

    def iter_keys(self):
        for entry in self.iter_objects():
            yield entry["path"]

    def get_unified_metadata(self, obj):
        return {"key": obj["path"], "last_modified": None, "size": obj.get("size")}

    def get_data(self, key):
        return read_task_objects(self, key, self.synced_commit or "")

    def file_url(self, path: str) -> str:
        return settings.HOSTNAME + self.file_view_path(path)

    def file_view_path(self, path: str) -> str:
        """The URL of the file view without the host: task URLs end with it under any HOSTNAME."""
        return f"/data/pachyderm/{self.id}/?path={quote(path)}"

    def commit_view_spec(self, commit: str) -> dict:
        """A read-only mount of one commit of this repo, for files whose labels outlived the
        content at the branch head. Its own name space (`ls_at_`): a pinned Source storage of the
        same commit may name another branch, and two specs under one name would conflict."""
        return {
            "name": mount_name("at", self.project_name, self.repo, commit),
            "project": self.project_name,
            "repo": self.repo,
            "branch": "master",
            "commit": commit,
            "mode": "ro",
            "idle": settings.PACHSTUDIO_VIEW_IDLE,  # the mount server unmounts it when unused
        }

    def can_resolve_url(self, url):
        # Our task URLs already point at Label Studio's own file view.
        return False

    def scan_and_create_links(self):
        sync_source(self)

    def sync(self):
        return background.start(self, "scan_and_create_links")


class PachydermImportStorage(ProjectStorageMixin, PachydermImportStorageBase):
    class Meta:
        abstract = False


class PachydermExportStorage(PachydermMixin, ExportStorage):
    FILE_FORMATS = (("annotation", "One file per annotation"), ("task", "One file per task with its annotations"))

    file_format = models.CharField(
        _("file format"),
        max_length=32,
        choices=FILE_FORMATS,
        default="annotation",
        help_text="annotation: <prefix>/<annotation id>.json; task: <prefix>/<task id>.json",
    )
    LAYOUTS = (
        ("id", "By id: <prefix>/<id>.json"),
        ("source_path", "Like the data: <prefix>/<path of the task's source file>.json"),
    )
    layout = models.CharField(
        _("layout"),
        max_length=32,
        choices=LAYOUTS,
        default="id",
        help_text="id: files named by id; source_path: one file per task at its source file's path + .json",
    )
    export_formats = models.JSONField(
        _("export formats"),
        default=list,
        blank=True,
        help_text="Label Studio converter formats (COCO, YOLO, ...) written under <prefix>/exports/ by each Sync",
    )
    splits = models.TextField(
        _("splits"),
        blank=True,
        default="",
        help_text='Frozen splits, e.g. "train 80, val 10, test 10, seed 7": each task\'s split from a hash of its '
        "source path and the seed, in every label file, the manifest and per split in the exports",
    )
    last_commit = models.CharField(
        _("last commit"),
        max_length=64,
        null=True,
        blank=True,
        help_text="Commit made by the last Sync that had changes",
    )
    pending_deletes = models.JSONField(
        _("pending deletes"),
        default=list,
        blank=True,
        help_text="Files whose delete could not be staged yet; Sync retries them",
    )
    restore_pending = models.CharField(
        _("restore pending"),
        max_length=64,
        null=True,
        blank=True,
        help_text="The commit a restore staged the project's annotations from; the next Sync's description says so",
    )

    mount_mode = "rw"

    def validate_connection(self, client=None):
        cluster_checks.check_target(self)

    @property
    def export_formats_text(self) -> str:
        return ", ".join(self.export_formats or [])

    @property
    def splitter(self):
        return target_splits.splitter(self.splits or "")

    @property
    def per_task(self) -> bool:
        """One file per task: the task format, and the source-path layout (a path names a task)."""
        return self.file_format == "task" or self.layout == "source_path"

    def file_key(self, annotation_id: int, task_id: int, source_path: str = "") -> str:
        """`source_path`: the task's path in its Source repo when the layout uses it (and it
        is the task's own, see target_layout); otherwise the file is named by id."""
        if source_path:
            name = f"{source_path}.json"
        else:
            name = f"{task_id if self.per_task else annotation_id}.json"
        return f"{self.clean_prefix}/{name}" if self.clean_prefix else name

    def save_annotation(self, annotation):
        write_annotation(self, annotation)

    def stage_all(self):
        stage_target(self)

    def commit_staged(self):
        sync_target(self)

    def sync(self, save_only_new_annotations: bool = False):
        return background.start(self, "commit_staged")


class PachydermImportStorageLink(ImportStorageLink):
    storage = models.ForeignKey(PachydermImportStorage, on_delete=models.CASCADE, related_name="links")

    class Meta:
        indexes = [models.Index(fields=["storage", "key"], name="pach_import_link_key")]


class PachydermExportStorageLink(ExportStorageLink):
    storage = models.ForeignKey(PachydermExportStorage, on_delete=models.CASCADE, related_name="links")
