"""What Label Studio's Data Manager and labeling view lack: "Task history" beside an open task (a
panel with its label history), and the project's label versions (a "Versions: <Target>" link per
Pachyderm Target). Both sit among the header's own buttons.

Chosen over a bundle patch: Label Studio 1.23.2 puts the open task in the page's URL
(`/projects/<p>/data?task=<id>`) in both the Data Manager's quick view and the labeling stream, so a
script added to its pages can follow that parameter (static/pachstudio/web/labeling_links.js). It depends on no
minified name of the bundle, so it cannot break the app. Label Studio changes pages without
reloading them (from the project list into a project, say), so the script goes into every page of
its app a signed-in user loads, follows the address, and asks the storage API for the project's
Targets (which answers only users of the project's organization).
"""

from .. import ls_frame

# A page of Label Studio's app: base.html's settings script
APP_PAGE = b'<script id="app-settings"'


class DataManagerLinksMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.method == "GET"
            and response.status_code == 200
            and not getattr(response, "streaming", False)
            and response.get("Content-Type", "").startswith("text/html")
            and getattr(request, "user", None) is not None
            and request.user.is_authenticated
        ):
            body = response.content
            at = body.rfind(b"</body>")
            if at >= 0 and APP_PAGE in body:
                nonce = getattr(request, "csp_nonce", "")
                nonce = f' nonce="{nonce}"' if nonce else ""
                tag = (
                    f'<link rel="stylesheet" href="{ls_frame.url("ls_pages.css")}">'
                    f'<script src="{ls_frame.url("labeling_links.js")}"{nonce}></script>'
                )
                response.content = body[:at] + tag.encode() + body[at:]
                if response.has_header("Content-Length"):
                    response["Content-Length"] = str(len(response.content))
        return response
