"""A "Task history" link in Label Studio's Data Manager and labeling view, one click from a task.

Chosen over a bundle patch: Label Studio 1.23.2 puts the open task in the page's URL
(`/projects/<p>/data?task=<id>`) in both the Data Manager's quick view and the labeling stream,
so a few lines of script added to those HTML pages can follow that parameter and show a link to
`/pachyderm/tasks/<id>/history`. It depends on no minified name of the bundle, so it cannot break
the app, and it leaves `patches/apply_frontend.py` to the storage card.
"""

import re

DATA_PAGE = re.compile(r"^/projects/\d+/data/?$")
LINK_ID = "pachstudio-task-history"
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


class TaskHistoryLinkMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.method == "GET"
            and response.status_code == 200
            and DATA_PAGE.match(request.path)
            and not getattr(response, "streaming", False)
            and response.get("Content-Type", "").startswith("text/html")
        ):
            body = response.content
            at = body.rfind(b"</body>")
            if at >= 0 and LINK_ID.encode() not in body:
                nonce = getattr(request, "csp_nonce", "")
                tag = f'<script nonce="{nonce}">{SCRIPT}</script>' if nonce else f"<script>{SCRIPT}</script>"
                response.content = body[:at] + tag.encode() + body[at:]
                if response.has_header("Content-Length"):
                    response["Content-Length"] = str(len(response.content))
        return response
