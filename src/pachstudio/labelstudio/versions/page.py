"""The Versions page of a Pachyderm Target (`/pachyderm/targets/<id>/versions`): plain HTML and a
little vanilla JS over the JSON APIs (versions, tags, diff, restore); no frontend build.

Served by Django like Label Studio's own pages: a signed-in session (else the login page), the
project's organization only (else 404). Everything the page shows from the data is set as text by
the script, never as HTML.
"""

import json
import pathlib

from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import Http404, HttpResponse
from django.middleware.csrf import get_token
from django.template import engines

from ..access import may_use
from ..storage.models import PachydermExportStorage

TEMPLATE = "pachstudio/versions/page.html"  # the app's templates/
# The app's static/, found by Django's finders and inlined in the page: Label Studio serves /static/
# from its STATIC_ROOT, built with its package, which holds none of our files.
SCRIPT = "pachstudio/versions/page.js"


@login_required
def versions_page(request, pk: int):
    storage = PachydermExportStorage.objects.filter(pk=pk).select_related("project").first()
    if storage is None or not may_use(request.user, storage.project):
        raise Http404(f"Pachyderm target storage {pk} not found")
    project = storage.project
    config = {
        "storage": storage.id,
        "project": project.id,
        "api": f"/api/storages/export/pachyderm/{storage.id}",
        "csrf": get_token(request),
    }
    template = engines["django"].get_template(TEMPLATE)
    html = template.render(
        {
            "title": storage.title or f"Target {storage.id}",
            "where": storage.describe(),
            "project_title": project.title,
            "project_id": project.id,
            "config": json.dumps(config),
            "script": pathlib.Path(finders.find(SCRIPT)).read_text(encoding="utf-8"),
        }
    )
    return HttpResponse(html, content_type="text/html; charset=utf-8")
