"""Links Label Studio's Data Manager and labeling view lack: "Task history", one click from a task,
and the project's label versions (a "Versions" link per Pachyderm Target of the project).

Chosen over a bundle patch: Label Studio 1.23.2 puts the open task in the page's URL
(`/projects/<p>/data?task=<id>`) in both the Data Manager's quick view and the labeling stream,
so a few lines of script added to those HTML pages can follow that parameter and show a link to
`/pachyderm/tasks/<id>/history`. It depends on no minified name of the bundle, so it cannot break
the app, and it leaves `patches/apply_frontend.py` to the storage card.
"""

import json
import re

from ..access import may_use

DATA_PAGE = re.compile(r"^/projects/(\d+)/data/?$")
LINK_ID = "pachstudio-task-history"
VERSIONS_ID = "pachstudio-versions-links"
SCRIPT = """
(function () {
  var link = document.createElement("a");
  link.id = "%(id)s";
  link.textContent = "Task history";
  link.title = "Who labeled this task, and when: its label versions in Pachyderm";
  link.style.cssText = "position:fixed;left:12px;bottom:12px;z-index:10000;display:none;padding:6px 12px;" +
    "background:#fff;border:1px solid #617ada;border-radius:4px;color:#617ada;font:14px sans-serif;" +
    "text-decoration:none;box-shadow:0 1px 4px rgba(0,0,0,.2)";
  // a full page load: Label Studio's single-page router would take the click and show its own 404
  link.addEventListener("click", function (event) {
    event.preventDefault();
    event.stopPropagation();
    window.location.assign(link.href);
  });
  function follow() {
    var task = new URLSearchParams(window.location.search).get("task");
    if (task && /^[0-9]+$/.test(task)) {
      link.href = "/pachyderm/tasks/" + task + "/history";
      link.style.display = "block";
    } else {
      link.style.display = "none";
    }
  }
  function start() { document.body.appendChild(link); follow(); setInterval(follow, 400); }
  if (document.body) { start(); } else { document.addEventListener("DOMContentLoaded", start); }
})();
""" % {"id": LINK_ID}

# One link per Target, bottom right, out of the way of the Data Manager's own controls.
VERSIONS_SCRIPT = """
(function () {
  var targets = %(targets)s;
  var box = document.createElement("div");
  box.id = "%(id)s";
  box.style.cssText = "position:fixed;right:12px;bottom:12px;z-index:10000;font:14px sans-serif";
  targets.forEach(function (t) {
    var link = document.createElement("a");
    link.className = "pachstudio-versions-link";
    link.textContent = "Versions: " + t.title;
    link.href = "/pachyderm/targets/" + t.id + "/versions";
    link.title = "The label versions this Target synced to Pachyderm: history, compare, tag, restore";
    link.style.cssText = "display:block;margin-top:6px;padding:6px 12px;background:#fff;border:1px solid #617ada;" +
      "border-radius:4px;color:#617ada;text-decoration:none;box-shadow:0 1px 4px rgba(0,0,0,.2)";
    link.addEventListener("click", function (event) {  // a full page load, as for Task history
      event.preventDefault();
      event.stopPropagation();
      window.location.assign(link.href);
    });
    box.appendChild(link);
  });
  function start() { document.body.appendChild(box); }
  if (document.body) { start(); } else { document.addEventListener("DOMContentLoaded", start); }
})();
"""


def project_targets(request, project_id: int) -> list:
    """The project's Pachyderm Targets, for a user of its organization only."""
    from projects.models import Project

    from ..storage.models import PachydermExportStorage

    project = Project.objects.filter(pk=project_id).first()
    if not may_use(request.user, project):
        return []
    rows = PachydermExportStorage.objects.filter(project=project).order_by("id").values_list("id", "title")
    return [{"id": pk, "title": title or f"Target {pk}"} for pk, title in rows]


class DataManagerLinksMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        page = DATA_PAGE.match(request.path)
        if (
            request.method == "GET"
            and response.status_code == 200
            and page
            and not getattr(response, "streaming", False)
            and response.get("Content-Type", "").startswith("text/html")
        ):
            body = response.content
            at = body.rfind(b"</body>")
            if at >= 0 and LINK_ID.encode() not in body:
                script = SCRIPT
                targets = project_targets(request, int(page.group(1)))
                if targets:
                    # json.dumps escapes nothing HTML-special; "<" as \u003c keeps a title from ending the script
                    data = json.dumps(targets).replace("<", "\\u003c")
                    script += VERSIONS_SCRIPT % {"targets": data, "id": VERSIONS_ID}
                nonce = getattr(request, "csp_nonce", "")
                tag = f'<script nonce="{nonce}">{script}</script>' if nonce else f"<script>{script}</script>"
                response.content = body[:at] + tag.encode() + body[at:]
                if response.has_header("Content-Length"):
                    response["Content-Length"] = str(len(response.content))
        return response
