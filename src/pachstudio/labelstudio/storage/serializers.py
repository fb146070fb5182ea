"""API shape of the storages (type `pachyderm`). There is no credential field: the cluster token
stays with the mount server, so nothing secret can be stored here or returned."""

from io_storages.serializers import ExportStorageSerializer, ImportStorageSerializer
from rest_framework import serializers

from ... import rules
from ..access import project_or_404
from . import target_splits
from .cluster_checks import default_project
from .models import PachydermExportStorage, PachydermImportStorage
from .paths import BadPath, normalize_prefix, shown
from .target_exports import check_formats


def pach_name(kind: str, value):
    """Pachyderm's rule for project, repo and branch names (pachd answers INVALID_ARGUMENT
    otherwise), checked here so the form says which field is wrong before anything reaches the
    cluster. Empty is allowed: the field's default applies."""
    if value and not rules.is_name(value):
        raise serializers.ValidationError(
            f'{kind} {shown(value)} is not a Pachyderm name: use only letters, digits, "_" and "-", '
            f"at most {rules.MAX_NAME} characters"
        )
    return value


class PachydermSerializerMixin:
    def validate_prefix(self, value):
        try:
            return normalize_prefix(value)
        except BadPath as exc:
            raise serializers.ValidationError(str(exc))

    def validate_repo(self, value):
        return pach_name("repo", value)

    def validate_pach_project(self, value):
        return pach_name("Pachyderm project", value)

    def validate_branch(self, value):
        return pach_name("branch", value) or "master"

    def validate_commit(self, value):
        if value and not rules.is_commit_ref(value):
            raise serializers.ValidationError(
                f"commit {shown(value)} is not a Pachyderm commit id (32 hexadecimal characters, or branch^ ancestry)"
            )
        return value

    def validate(self, data):
        data = super().validate(data)
        request = self.context.get("request")
        if request is not None and data.get("project") is not None:
            # Before the connection check: a stranger's form must not mount anything either.
            project_or_404(request.user, data["project"].id)
        if not data.get("pach_project") and not (self.instance and self.instance.pach_project):
            data["pach_project"] = default_project()
        if self.instance is not None:
            storage = self.instance
            for key, value in data.items():
                setattr(storage, key, value)
        else:
            storage = self.Meta.model(**data)
        storage.validate_connection()
        return data


class PachydermImportStorageSerializer(PachydermSerializerMixin, ImportStorageSerializer):
    type = serializers.ReadOnlyField(default="pachyderm")

    def validate_predictions_from(self, value):
        """`[project/]repo@branch`, kept as typed (its project defaults to the Source's); whether it
        exists and may be read is the connection check's (cluster_checks.check_predictions)."""
        value = (value or "").strip()
        if value:
            try:
                rules.parse_branch_uri(value)
            except ValueError as exc:
                raise serializers.ValidationError(str(exc))
        return value

    class Meta:
        model = PachydermImportStorage
        fields = "__all__"
        read_only_fields = ("synced_commit", "synced_filter", "predictions_commit", "predictions_version")


class PachydermExportStorageSerializer(PachydermSerializerMixin, ExportStorageSerializer):
    type = serializers.ReadOnlyField(default="pachyderm")
    # a list, or a comma-separated text
    export_formats = serializers.JSONField(required=False)
    # the same as text, for the storage wizard, whose fields are strings
    export_formats_text = serializers.CharField(required=False, allow_blank=True)

    def validate_splits(self, value):
        try:
            return target_splits.canonical(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc))

    def update(self, instance, validated_data):
        """A new split rule re-splits: every label file is staged again (its links dropped), so the
        next Sync writes each with its new split."""
        # from the database: validate() already set the new values on the instance for its checks
        before = type(instance).objects.filter(pk=instance.pk).values_list("splits", flat=True).first()
        storage = super().update(instance, validated_data)
        if storage.splits != before:
            storage.links.all().delete()
        return storage

    def validate(self, data):
        if data.get("layout", self.instance.layout if self.instance else "id") == "source_path":
            data["file_format"] = "task"  # a source path names a task: one file per task
        if "export_formats_text" in data:
            text = data.pop("export_formats_text")
            current = ", ".join(self.instance.export_formats or []) if self.instance else ""
            if "export_formats" not in data or text.strip() != current:  # the field the user changed wins
                data["export_formats"] = text
        data = super().validate(data)  # after the project access check
        project = data.get("project") or (self.instance.project if self.instance else None)
        if "export_formats" in data and project is not None:
            try:
                data["export_formats"] = check_formats(data["export_formats"], project.get_parsed_config())
            except ValueError as exc:
                raise serializers.ValidationError({"export_formats": [str(exc)]})
        return data

    class Meta:
        model = PachydermExportStorage
        fields = "__all__"
        read_only_fields = ("last_commit", "pending_deletes", "restore_pending")
