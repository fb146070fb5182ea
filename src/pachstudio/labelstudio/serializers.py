"""API shape of the storages (type `pachyderm`). There is no credential field: the cluster token
stays with the mount server, so nothing secret can be stored here or returned."""
from io_storages.serializers import ExportStorageSerializer, ImportStorageSerializer
from rest_framework import serializers

from .connection import default_project
from .models import PachydermExportStorage, PachydermImportStorage
from .paths import BadPath, normalize_prefix


class PachydermSerializerMixin:
    def validate_prefix(self, value):
        try:
            return normalize_prefix(value)
        except BadPath as exc:
            raise serializers.ValidationError(str(exc))

    def validate_branch(self, value):
        return value or 'master'

    def validate(self, data):
        data = super().validate(data)
        if not data.get('pach_project') and not (self.instance and self.instance.pach_project):
            data['pach_project'] = default_project()
        if self.instance is not None:
            storage = self.instance
            for key, value in data.items():
                setattr(storage, key, value)
        else:
            storage = self.Meta.model(**data)
        storage.validate_connection()
        return data


class PachydermImportStorageSerializer(PachydermSerializerMixin, ImportStorageSerializer):
    type = serializers.ReadOnlyField(default='pachyderm')

    class Meta:
        model = PachydermImportStorage
        fields = '__all__'
        read_only_fields = ('synced_commit', 'synced_filter')


class PachydermExportStorageSerializer(PachydermSerializerMixin, ExportStorageSerializer):
    type = serializers.ReadOnlyField(default='pachyderm')

    class Meta:
        model = PachydermExportStorage
        fields = '__all__'
        read_only_fields = ('last_commit', 'pending_deletes')
