"""REST views of the `pachyderm` storage type: Label Studio's generic views with our models."""

from io_storages.api import (
    ExportStorageDetailAPI,
    ExportStorageFormLayoutAPI,
    ExportStorageListAPI,
    ExportStorageSyncAPI,
    ExportStorageValidateAPI,
    ImportStorageDetailAPI,
    ImportStorageFormLayoutAPI,
    ImportStorageListAPI,
    ImportStorageListFilesAPI,
    ImportStorageSyncAPI,
    ImportStorageValidateAPI,
)
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ..access import OrganizationBodyMixin, OrganizationListMixin, OrganizationObjectMixin
from ..mount_client import MountServerError
from . import background, release
from .models import PachydermExportStorage, PachydermImportStorage
from .serializers import PachydermExportStorageSerializer, PachydermImportStorageSerializer


class PachydermImportStorageListAPI(OrganizationListMixin, ImportStorageListAPI):
    queryset = PachydermImportStorage.objects.all()
    serializer_class = PachydermImportStorageSerializer


class PachydermImportStorageDetailAPI(OrganizationObjectMixin, ImportStorageDetailAPI):
    queryset = PachydermImportStorage.objects.all()
    serializer_class = PachydermImportStorageSerializer


class QueueSyncMixin:
    """Sync only queues: the connection is checked by the job itself, so whatever is wrong
    (a repo deleted since, an unreachable cluster) shows on the storage card with its reason.
    Pressed while a job of the storage runs, it is queued after it (status queued, meta.queued and
    `message` in the answer say so). A deleted storage is 404 (get_object)."""

    def post(self, request, *args, **kwargs):
        storage = self.get_object()
        if not storage.synchronizable:
            return Response(
                status=status.HTTP_400_BAD_REQUEST, data={"message": f"Storage {storage.id} is not synchronizable"}
            )
        started = storage.sync()
        storage.refresh_from_db()
        data = dict(self.serializer_class(storage).data)
        if started == background.QUEUED:  # (the running job may have written its own status just now)
            data["status"] = storage.Status.QUEUED
            data["meta"] = dict(data.get("meta") or {}, queued=background.QUEUED_NOTE)
            data["message"] = f"{background.QUEUED_NOTE}: it runs once that job ends"
        return Response(data)


class PachydermImportStorageSyncAPI(QueueSyncMixin, OrganizationObjectMixin, ImportStorageSyncAPI):
    serializer_class = PachydermImportStorageSerializer


class PachydermImportStorageValidateAPI(OrganizationBodyMixin, ImportStorageValidateAPI):
    serializer_class = PachydermImportStorageSerializer


class PachydermImportStorageFormLayoutAPI(ImportStorageFormLayoutAPI):
    pass


class PachydermImportStorageListFilesAPI(OrganizationBodyMixin, ImportStorageListFilesAPI):
    """The form's file preview."""


class PachydermExportStorageListAPI(OrganizationListMixin, ExportStorageListAPI):
    queryset = PachydermExportStorage.objects.all()
    serializer_class = PachydermExportStorageSerializer

    def perform_create(self, serializer):
        """Creating a Target stages the project's existing annotations; it does not commit.
        (The serializer already checked the connection.)"""
        project = serializer.validated_data.get("project")
        if project is not None and not project.has_permission(self.request.user):
            raise PermissionDenied("You do not have permission to create storages for this project.")
        storage = serializer.save()
        background.start(storage, "stage_all")


class PachydermExportStorageDetailAPI(OrganizationObjectMixin, ExportStorageDetailAPI):
    queryset = PachydermExportStorage.objects.all()
    serializer_class = PachydermExportStorageSerializer

    def destroy(self, request, *args, **kwargs):
        """Label Studio's 204 (its frontend only reloads the list); when the Target's mount is kept
        for its staged labels, the header X-Pachstudio-Notice says so and where to settle them."""
        storage = self.get_object()
        self.perform_destroy(storage)
        response = Response(status=status.HTTP_204_NO_CONTENT)
        notice = getattr(storage, "pachyderm_notice", None)
        if notice:
            response["X-Pachstudio-Notice"] = notice
        return response


class KeptMountListAPI(APIView):
    """Mounts of deleted Targets kept for their staged labels (the user's organization only)."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        try:
            return Response(release.kept_mounts(request.user.active_organization_id))
        except MountServerError as exc:
            raise api_error(exc) from None


class KeptMountSettleAPI(APIView):
    """POST .../kept/<name>/sync: one commit of its staged labels, then it is unmounted;
    POST .../kept/<name>/discard: dropped and unmounted."""

    permission_classes = [IsAuthenticated]

    def post(self, request, name: str, action: str):
        try:
            return Response(release.settle(name, request.user.active_organization_id, action))
        except MountServerError as exc:
            raise api_error(exc) from None


def api_error(exc: MountServerError) -> APIException:
    if exc.status == 404:
        return NotFound(str(exc))
    error = APIException(str(exc))
    error.status_code = exc.status if 400 <= exc.status < 500 else 503
    return error


class PachydermExportStorageSyncAPI(QueueSyncMixin, OrganizationObjectMixin, ExportStorageSyncAPI):
    serializer_class = PachydermExportStorageSerializer


class PachydermExportStorageValidateAPI(OrganizationBodyMixin, ExportStorageValidateAPI):
    serializer_class = PachydermExportStorageSerializer


class PachydermExportStorageFormLayoutAPI(ExportStorageFormLayoutAPI):
    pass
