"""How the file view serves a repo's file, so that what someone wrote to a Source repo cannot run
script on Label Studio's origin in an annotator's session.

What Label Studio's object tags show goes inline with its type: Image (`<img>`), Audio, Video, the
text that Text, HyperText, Paragraphs, Table and TimeSeries fetch (plain text, JSON, CSV, TSV) and
the PDF its Pdf tag embeds. Anything else (HTML, XML, JavaScript, a type we cannot name) is a
download. Every answer carries `X-Content-Type-Options: nosniff` (a browser never reads a type
into it) and all but PDFs `Content-Security-Policy: sandbox` (opened directly, no script runs and
the page has no origin; Chromium's PDF viewer does not load in a sandboxed document). SVG is an
image Label Studio shows, so it is inline: in an `<img>` an SVG never runs script, and opened by
itself the sandbox keeps it inert. HyperText reads HTML with fetch(), which neither the download
nor the sandbox affects.
"""

import mimetypes
import posixpath

from django.utils.http import content_disposition_header

SHOWN_PREFIXES = ("image/", "audio/", "video/")
SHOWN_TYPES = {"text/plain", "text/csv", "text/tab-separated-values", "application/json", "application/pdf"}
UNSANDBOXED = {"application/pdf"}


def content_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def headers(path: str) -> dict:
    """The type and safety headers of a file answer (200, 206, HEAD and 304 alike)."""
    kind = content_type(path)
    out = {"Content-Type": kind, "X-Content-Type-Options": "nosniff"}
    if kind not in UNSANDBOXED:
        out["Content-Security-Policy"] = "sandbox"
    shown = kind.startswith(SHOWN_PREFIXES) or kind in SHOWN_TYPES
    out["Content-Disposition"] = content_disposition_header(not shown, posixpath.basename(path))
    return out
