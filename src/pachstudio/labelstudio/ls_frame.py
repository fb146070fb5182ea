"""Our pages inside Label Studio's own frame, and their scripts and stylesheet.

A page is a template (the app's templates/) extending Label Studio's `base.html`: its stylesheet and
React app, which draws the header, the menu and, from `frontend_settings`, the breadcrumbs around
the page's `content` (shown for any path its router does not know).

Scripts and stylesheet are plain files in the app's static/ (found by Django's finders), no frontend
build, served at `/pachyderm/assets/<name>`: Label Studio serves /static/ only from its own
prebuilt STATIC_ROOT. Every script is served with the helpers (`ls_pages.js`) and Label Studio's
component classes (`ls_look`) in front, so the pages style their buttons, badges and dialogs with
the classes Label Studio's own stylesheets define. URLs carry a digest of what is served (`?v=`),
so a browser caches each version for good and never runs a stale one.
"""

import functools
import hashlib
import json
import pathlib

from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import Http404, HttpResponse
from django.template import engines

from . import ls_look

# What each URL serves (files of static/pachstudio/): the helpers every page uses first, then the
# page's own script (one file, so the order holds however Label Studio re-inserts a page's scripts)
BUNDLES = {
    "ls_pages.css": ["ls_pages.css"],
    "versions_page.js": ["ls_pages.js", "versions/page.js"],
    "task_history.js": ["ls_pages.js", "history/panel.js"],
    "labeling_links.js": ["ls_pages.js", "history/panel.js", "web/labeling_links.js"],
}


def _read(name: str) -> str:
    return pathlib.Path(finders.find(f"pachstudio/{name}")).read_text(encoding="utf-8")


@functools.cache
def content(name: str) -> bytes:
    parts = [_read(part) for part in BUNDLES[name]]
    if name.endswith(".js"):
        found = json.dumps(ls_look.classes()).replace("<", "\\u003c")  # nothing in it can end the script
        parts.insert(0, f"window.PACHSTUDIO_LS_CLASSES = window.PACHSTUDIO_LS_CLASSES || {found};\n")
    return "\n".join(parts).encode()


@functools.cache
def url(name: str) -> str:
    return f"/pachyderm/assets/{name}?v={hashlib.sha256(content(name)).hexdigest()[:12]}"


@login_required
def asset(request, name: str):
    if name not in BUNDLES:
        raise Http404(f"no asset {name}")
    kind = "text/css" if name.endswith(".css") else "text/javascript"
    response = HttpResponse(content(name), content_type=f"{kind}; charset=utf-8")
    if request.GET.get("v"):
        response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


def breadcrumbs(project, *rest) -> list:
    """Label Studio's own trail for a project page: Projects / <project> / ...rest ({"title", "href"?})."""
    return [
        {"title": "Projects", "href": "/projects"},
        {"title": project.title, "href": f"/projects/{project.id}/data"},
        *rest,
    ]


def render_page(request, template: str, context: dict, crumbs: list) -> HttpResponse:
    # `frontend_settings` is a JavaScript object literal inside a script: JSON, "<" escaped
    frame = json.dumps({"breadcrumbs": crumbs}).replace("<", "\\u003c")
    page = engines["django"].get_template(template)
    heading = ls_look.classes()["typography"].get("typography-headline-small", "")  # Label Studio's page titles
    context = {**context, "frame_settings": frame, "css_url": url("ls_pages.css"), "heading_class": heading}
    return HttpResponse(page.render(context, request), content_type="text/html; charset=utf-8")
