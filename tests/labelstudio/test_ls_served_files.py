"""A Source's files as the browser gets them: what Label Studio's tags show inline with its type,
the rest (HTML, XML, JavaScript, unknown types) as downloads, every answer `nosniff`, and all but
PDFs in a CSP sandbox, so a file someone wrote to a Source repo runs no script on Label Studio's
origin. Real Label Studio, mount server and embedded PFS server; the browser's side is
tests/patches/test_served_files_browser.py."""
import pytest
from ls_helpers import IMAGE_CONFIG, make_repo, put

# path -> (Content-Type, disposition, sandboxed); "a|b": either name of the type (Python's and the
# system's type maps differ on a few)
KINDS = {
    "shown/cat.png": ("image/png", "inline", True),
    "shown/photo.jpg": ("image/jpeg", "inline", True),
    "shown/vector.svg": ("image/svg+xml", "inline", True),
    "shown/clip.mp3": ("audio/mpeg", "inline", True),
    "shown/clip.wav": ("audio/x-wav|audio/wav", "inline", True),
    "shown/movie.mp4": ("video/mp4", "inline", True),
    "shown/notes.txt": ("text/plain", "inline", True),
    "shown/dialog.json": ("application/json", "inline", True),
    "shown/series.csv": ("text/csv", "inline", True),
    "shown/series.tsv": ("text/tab-separated-values", "inline", True),
    "shown/paper.pdf": ("application/pdf", "inline", False),  # Chromium's PDF viewer needs no sandbox
    "other/page.html": ("text/html", "attachment", True),
    "other/page.htm": ("text/html", "attachment", True),
    "other/page.xhtml": ("application/xhtml+xml", "attachment", True),
    "other/feed.xml": ("application/xml|text/xml", "attachment", True),
    "other/code.js": ("text/javascript|application/javascript", "attachment", True),
    "other/blob.bin": ("application/octet-stream", "attachment", True),
    "other/no-extension": ("application/octet-stream", "attachment", True),
}


@pytest.fixture(scope="module")
def served(labelstudio, shared_pfs_server):
    """{path: absolute file URL} of one file task per kind."""
    pach = shared_pfs_server.client()
    repo = make_repo(pach)
    put(pach, repo, {path: f"content of {path}".encode() for path in KINDS})
    project = labelstudio.create_project(label_config=IMAGE_CONFIG)
    source = labelstudio.create_source(project["id"], repo=repo, use_blob_urls=True, recursive_scan=True)
    assert labelstudio.sync(source["id"])["last_sync_count"] == len(KINDS)
    urls = {}
    for task in labelstudio.tasks(project["id"]):
        [url] = [v for v in task["data"].values() if isinstance(v, str) and "/data/pachyderm/" in v]
        urls[task["data"]["pachyderm_path"]] = labelstudio.url + url
    return urls


@pytest.mark.parametrize("path", list(KINDS))
def test_each_kind_of_file_is_served_inline_only_when_label_studio_shows_it(labelstudio, served, path):
    kind, disposition, sandboxed = KINDS[path]
    name = path.rsplit("/", 1)[1]
    http = labelstudio.session
    full = http.get(served[path], timeout=60)
    part = http.get(served[path], headers={"Range": "bytes=0-3"}, timeout=60)
    head = http.head(served[path], timeout=60)
    same = http.get(served[path], headers={"If-None-Match": full.headers["ETag"]}, timeout=60)
    assert (full.status_code, part.status_code, head.status_code, same.status_code) == (200, 206, 200, 304)
    assert full.content == f"content of {path}".encode() and part.content == full.content[:4]
    for answer in (full, part, head):
        assert answer.headers["Content-Type"] in kind.split("|")
        assert answer.headers["Content-Disposition"] == f'{disposition}; filename="{name}"'
    for answer in (full, part, head, same):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers.get("Content-Security-Policy") == ("sandbox" if sandboxed else None)
