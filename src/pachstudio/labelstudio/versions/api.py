"""A Pachyderm Target's versions (the commits of its branch) and tags, for the Versions page.

Thin glue: the mount server lists the commits and makes the tags (Pachyderm branches); what each
version holds is read back from the description its Sync wrote (target_sync.parse_description).
Errors answer {"detail": "<what is wrong and how to fix it>"} with 400, 404 or 409.
"""

from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import mount_client
from ..access import may_use
from ..storage.models import PachydermExportStorage
from ..storage.target_sync import parse_description
from . import model_metrics

MAX_PAGE_SIZE = 1000


class Refusal(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def target_of(request, pk) -> PachydermExportStorage:
    """The Target `pk` when the user may use its project; another organization's is 404."""
    storage = PachydermExportStorage.objects.filter(pk=pk).select_related("project").first()
    if storage is None or not may_use(request.user, storage.project):
        raise Refusal(404, f"Pachyderm target storage {pk} not found")
    return storage


def _number(request, name: str, default: int, most: int) -> int:
    raw = request.query_params.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise Refusal(400, f"{name}: {raw[:50]!r} is not a whole number from 1 to {most}")
    return value


def _staged_count(storage) -> int:
    """Changes staged in the Target's mount since its last Sync (0 when it is not mounted)."""
    try:
        staged = mount_client.staged(storage.mount)
    except mount_client.MountServerError as exc:
        if exc.status == 404:
            return 0
        raise
    return sum(len(staged.get(k) or []) for k in ("added", "changed", "deleted"))


def versions_answer(storage, page: int, page_size: int) -> dict:
    listing = mount_client.versions(storage.project_name, storage.repo, storage.ref, page, page_size)
    tags_at = {}
    for tag in listing["tags"]:
        tags_at.setdefault(tag["commit"], []).append(tag["name"])
    versions = []
    for version in listing["versions"]:
        notes = parse_description(version["description"])
        versions.append(
            {
                "commit": version["commit"],
                "finished": version["finished"],
                "description": version["description"],
                **{k: notes[k] for k in ("added", "changed", "deleted", "annotators", "source_commits")},
                "tags": tags_at.get(version["commit"], []),
                "restored_from": notes["restored_from"],
                "health": notes["health"],
            }
        )
    pipelines = model_metrics.add_to(storage, versions)
    return {
        "count": listing["count"],
        "page": page,
        "page_size": page_size,
        "staged": _staged_count(storage),
        "pipelines": pipelines,
        "metric_columns": model_metrics.columns(versions),
        "versions": versions,
    }


class _TargetView(APIView):
    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer]  # every answer JSON (Label Studio would render a 404 as its HTML page)

    def handle_exception(self, exc):
        if isinstance(exc, Refusal):
            return Response({"detail": exc.detail}, status=exc.status)
        if isinstance(exc, mount_client.MountServerError):
            code = exc.status if exc.status in (400, 404, 409) else 503
            return Response({"detail": str(exc)}, status=code)
        return super().handle_exception(exc)


class VersionsAPI(_TargetView):
    """GET /api/storages/export/pachyderm/<id>/versions?page=1&page_size=50"""

    def get(self, request, pk: int):
        storage = target_of(request, pk)
        page = _number(request, "page", 1, 10**6)
        page_size = _number(request, "page_size", 50, MAX_PAGE_SIZE)
        return Response(versions_answer(storage, page, page_size))


class TagsAPI(_TargetView):
    """GET .../tags: [{"name", "commit"}]; POST {"name", "commit"}: a Pachyderm branch `name` at
    that commit of the Target's branch (201; 200 when it was already there)."""

    def get(self, request, pk: int):
        storage = target_of(request, pk)
        return Response(mount_client.tags(storage.project_name, storage.repo, storage.ref))

    def post(self, request, pk: int):
        storage = target_of(request, pk)
        body = request.data if isinstance(request.data, dict) else {}
        name, commit = body.get("name"), body.get("commit")
        if not isinstance(name, str) or not isinstance(commit, str):
            raise Refusal(400, 'send {"name": "<tag, e.g. v3>", "commit": "<a version\'s commit id>"}')
        made = mount_client.create_tag(storage.project_name, storage.repo, storage.ref, name, commit)
        return Response({"name": made["name"], "commit": made["commit"]}, status=201 if made["created"] else 200)


class JobTagsAPI(_TargetView):
    """POST {"name", "commit", "pipeline"}: a Pachyderm branch `name` of the pipeline's output repo at
    the output commit of the job version `commit` started (201; 200 when it was already there)."""

    def post(self, request, pk: int):
        storage = target_of(request, pk)
        body = request.data if isinstance(request.data, dict) else {}
        name, commit, pipeline = body.get("name"), body.get("commit"), body.get("pipeline")
        if not all(isinstance(v, str) and v for v in (name, commit, pipeline)):
            raise Refusal(
                400,
                'send {"name": "<tag, e.g. best-model>", "commit": "<a version\'s commit id>", '
                '"pipeline": "<project/pipeline whose job output to tag>"}',
            )
        made = mount_client.tag_job_output(storage.project_name, storage.repo, storage.ref, name, commit, pipeline)
        created = made.pop("created")
        return Response(made, status=201 if created else 200)
