"""REST views of a Target's diff and restore (issue 17): JSON in Label Studio's API, errors as
`{"detail": ...}` with 400/404/409; the work is in `label_diff` and `restore`."""

from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ..mount_client import MountServerError
from ..storage.models import PachydermExportStorage
from . import label_diff, model_metrics, restore
from .label_diff import VersionError


def _target(request, pk: int):
    """The Target when it belongs to the user's organization; None otherwise (answered 404)."""
    return PachydermExportStorage.objects.filter(
        pk=pk, project__organization_id=getattr(request.user, "active_organization_id", None)
    ).first()


def _refusal(exc: Exception) -> Response:
    if isinstance(exc, ValidationError):  # the Target's mount could not be mounted (cluster_checks)
        detail = exc.detail if isinstance(exc.detail, list) else [exc.detail]
        return Response({"detail": "; ".join(str(d) for d in detail)}, status=503)
    status = exc.status if isinstance(exc, (VersionError, MountServerError)) else 500
    if isinstance(exc, MountServerError) and not 400 <= status < 500:
        status = 503
    return Response({"detail": str(exc)}, status=status)


class TargetDiffAPI(APIView):
    """GET .../diff?from=<commit>&to=<commit or "staged">."""

    permission_classes = [IsAuthenticated]

    def get(self, request, pk: int):
        storage = _target(request, pk)
        if storage is None:
            return Response({"detail": f"Pachyderm target storage {pk} not found"}, status=404)
        old, new = request.query_params.get("from"), request.query_params.get("to")
        if not old or not new:
            return Response(
                {"detail": 'give from=<commit> and to=<commit or "staged">: the two versions to compare'}, status=400
            )
        try:
            answer = label_diff.diff(storage, old, new)
            if new != label_diff.STAGED:  # what the two versions' pipeline jobs measured, side by side
                answer["metrics"] = model_metrics.changes(storage, old, new)
            return Response(answer)
        except (VersionError, MountServerError, ValidationError) as exc:
            return _refusal(exc)


class TargetRestoreAPI(APIView):
    """POST .../restore {"commit", "confirm": false} previews; with "confirm": true restores."""

    permission_classes = [IsAuthenticated]

    def post(self, request, pk: int):
        storage = _target(request, pk)
        if storage is None:
            return Response({"detail": f"Pachyderm target storage {pk} not found"}, status=404)
        body = request.data if isinstance(request.data, dict) else {}
        commit, confirm = body.get("commit"), body.get("confirm", False)
        if not isinstance(confirm, bool):
            return Response({"detail": "confirm: true to restore, false (the default) for the preview"}, status=400)
        try:
            if confirm:
                return Response(restore.confirm(storage, commit, request.user))
            return Response(restore.preview(storage, commit))
        except (VersionError, MountServerError, ValidationError) as exc:
            return _refusal(exc)
