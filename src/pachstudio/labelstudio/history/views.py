"""Per-task history over HTTP: `GET /api/pachyderm/tasks/<id>/history` (JSON) and the page
`/pachyderm/tasks/<id>/history` (server-rendered HTML, no script). Both answer only users of the
task's organization; anyone else gets 404, as for the storages."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.utils.html import escape, format_html
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from tasks.models import Task

from ..access import may_use
from ..mount_client import MountServerError
from .task_history import task_history


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


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
code{font-size:.9em}.note{color:#555}
"""


def _short(commit) -> str:
    return (commit or "")[:12]


def _render(history: dict) -> str:
    parts = [
        format_html("<h1>Task {} history</h1>", history["task_id"]),
        format_html('<p><a id="back-to-task" href="{}">Back to the task</a></p>', history["task_url"]),
    ]
    source = history["source"]
    if source:
        parts.append(
            format_html(
                '<p id="source">Source file: <code>{}@{}:/{}</code></p>',
                source["repo"],
                source["commit"] or "?",
                (source["path"] or "").lstrip("/"),
            )
        )
    else:
        parts.append('<p id="source" class="note">Source file: not from a Pachyderm Source</p>')
    for target in history["targets"]:
        parts.append(
            format_html(
                '<p class="note">Target {}{} on <code>{}</code>: {} versions looked at{}</p>',
                target["id"],
                f' "{target["title"]}"' if target["title"] else "",
                target["repo"],
                target["commits"],
                f" ({target['note']})" if target.get("note") else "",
            )
        )
    if history["message"]:
        parts.append(format_html('<p id="message">{}</p>', history["message"]))
    for ann in history["annotations"]:
        parts.append(
            format_html(
                '<h2 class="annotation" data-id="{}">Annotation {} by {}</h2><p>first in version <code>{}</code></p>',
                ann["id"],
                ann["id"],
                ann["by"] or "unknown",
                _short(ann["first_version"]) or "none",
            )
        )
        rows = "".join(
            format_html(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                v["finished"] or "",
                _short(v["commit"]),
                v["change"],
                v["by"] or "unknown",
                v["repo"],
            )
            for v in ann["versions"]
        )
        parts.append(
            "<table><tr><th>when (UTC)</th><th>version</th><th>change</th><th>by</th><th>target</th></tr>"
            + rows
            + "</table>"
        )
    title = escape(f"Task {history['task_id']} history")
    head = f"<meta charset=utf-8><title>{title}</title><style>{STYLE}</style>"
    return f"<!doctype html><html><head>{head}</head><body>{''.join(parts)}</body></html>"


@login_required
def task_history_page(request, task_id: int):
    task = task_for(request.user, task_id)
    if task is None:
        return HttpResponse(_not_found(task_id), status=404, content_type="text/plain; charset=utf-8")
    try:
        history = task_history(task)
    except MountServerError as exc:
        return HttpResponse(
            f"the task's history cannot be read now: {exc}",
            status=_failure_status(exc),
            content_type="text/plain; charset=utf-8",
        )
    return HttpResponse(_render(history), content_type="text/html; charset=utf-8")
