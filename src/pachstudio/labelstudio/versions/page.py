"""The Versions page of a Pachyderm Target (`/pachyderm/targets/<id>/versions`), inside Label
Studio's frame (`ls_frame`): a little vanilla JS over the JSON APIs (versions, tags, diff, restore,
jobs); no frontend build.

Served by Django like Label Studio's own pages: a signed-in session (else the login page), the
project's organization only (else 404). Everything the page shows from the data is set as text by
the script, never as HTML.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404

from .. import ls_frame
from ..access import may_use
from ..storage.models import PachydermExportStorage

TEMPLATE = "pachstudio/versions/page.html"  # the app's templates/


@login_required
def versions_page(request, pk: int):
    storage = PachydermExportStorage.objects.filter(pk=pk).select_related("project").first()
    if storage is None or not may_use(request.user, storage.project):
        raise Http404(f"Pachyderm target storage {pk} not found")
    project = storage.project
    title = storage.title or f"Target {storage.id}"
    config = {
        "storage": storage.id,
        "title": title,
        "project": project.id,
        "api": f"/api/storages/export/pachyderm/{storage.id}",
        "storage_settings": f"/projects/{project.id}/settings/storage",
        "data_manager": f"/projects/{project.id}/data",
    }
    context = {
        "title": title,
        "where": storage.describe(),
        "config": config,
        "script_url": ls_frame.url("versions_page.js"),
    }
    return ls_frame.render_page(request, TEMPLATE, context, ls_frame.breadcrumbs(project, {"title": "Versions"}))
