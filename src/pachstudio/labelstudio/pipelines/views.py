"""What a Sync started and where a Source's tasks came from, for the storage cards: the mount
server's answers about the cluster's pipelines, for a storage of the user's organization."""

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from ...rules import is_commit_id
from .. import mount_client
from ..access import OrganizationObjectMixin
from ..mount_client import MountServerError
from ..storage.api import api_error
from ..storage.models import PachydermExportStorage, PachydermImportStorage


def _commit_param(request, default: str) -> str:
    commit = request.query_params.get("commit") or default
    if commit and not is_commit_id(commit):
        raise ValidationError({"commit": [f"{commit[:80]!r} is not a commit id (32 lowercase hex characters)"]})
    return commit


class TargetJobsAPI(OrganizationObjectMixin, GenericAPIView):
    """GET .../export/pachyderm/<id>/jobs[?commit=]: the jobs the Target's last Sync commit (or
    `commit`) started on the cluster."""

    permission_classes = [IsAuthenticated]
    queryset = PachydermExportStorage.objects.all()

    def get(self, request, *args, **kwargs):
        storage = self.get_object()
        commit = _commit_param(request, storage.last_commit or "")
        if not commit:
            return Response(
                {
                    "commit": None,
                    "state": "none",
                    "message": "no Sync commit yet",
                    "jobs": [],
                    "pipelines": [],
                    "ended": True,
                }
            )
        try:
            answer = mount_client.commit_jobs(storage.project_name, storage.repo, commit, storage.branch or "master")
        except MountServerError as exc:
            raise api_error(exc) from None
        return Response(answer)


class SourceProvenanceAPI(OrganizationObjectMixin, GenericAPIView):
    """GET .../pachyderm/<id>/provenance[?commit=]: whether the commit the Source synced is a
    pipeline's output, from which pipeline, job and input commits."""

    permission_classes = [IsAuthenticated]
    queryset = PachydermImportStorage.objects.all()

    def get(self, request, *args, **kwargs):
        storage = self.get_object()
        commit = _commit_param(request, storage.synced_commit or "")
        if not commit:
            return Response({"commit": None, "state": "none", "message": "not synced yet", "inputs": []})
        try:
            answer = mount_client.commit_provenance(storage.project_name, storage.repo, commit)
        except MountServerError as exc:
            if exc.status == 404:
                raise NotFound(str(exc)) from None
            raise api_error(exc) from None
        return Response(answer)
