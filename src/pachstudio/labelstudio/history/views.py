"""Per-task history over HTTP: `GET /api/pachyderm/tasks/<id>/history` (JSON) and the page
`/pachyderm/tasks/<id>/history` (in Label Studio's frame, drawn from the JSON). Both answer only
users of the task's organization; anyone else gets 404, as for the storages."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from tasks.models import Task

from .. import ls_frame
from ..access import may_use
from ..mount_client import MountServerError
from .task_history import task_history

TEMPLATE = "pachstudio/history/page.html"  # the app's templates/


def task_for(user, task_id):
    """The task, when the user may use its project; None otherwise (answered as 404)."""
    task = Task.objects.filter(id=int(task_id)).select_related("project").first()
    return task if task is not None and may_use(user, task.project) else None


def _not_found(task_id) -> str:
    return f"task {task_id} not found: no task with this id in a project of your organization"


def _failure_status(exc: MountServerError) -> int:
    return exc.status if exc.status in (400, 404, 409) else 503


class TaskHistoryAPI(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request, task_id: int):
        task = task_for(request.user, task_id)
        if task is None:
            return Response({"detail": _not_found(task_id)}, status=404)
        try:
            return Response(task_history(task))
        except MountServerError as exc:
            return Response({"detail": f"the task's history cannot be read now: {exc}"}, status=_failure_status(exc))


@login_required
def task_history_page(request, task_id: int):
    """The page shell in Label Studio's frame; the history itself comes from the API above, drawn
    by static/pachstudio/history/panel.js (as in the labeling view's panel), with its loading and error states."""
    task = task_for(request.user, task_id)
    if task is None:
        return HttpResponse(_not_found(task_id), status=404, content_type="text/plain; charset=utf-8")
    task_url = f"/projects/{task.project_id}/data?task={task.id}"
    context = {"task_id": task.id, "task_url": task_url, "script_url": ls_frame.url("task_history.js")}
    crumbs = ls_frame.breadcrumbs(task.project, {"title": f"Task {task.id}", "href": task_url}, {"title": "History"})
    return ls_frame.render_page(request, TEMPLATE, context, crumbs)
