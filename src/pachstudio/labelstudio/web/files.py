"""Serve a Source storage's files to the browser: project access checked, streamed from the mount.

Answers ranges and ETags. A missing file is 404, a path that tries to leave the mount 400:
never a 500 (Label Studio's local-files view answers a traversal attempt with a 500).
A URL with `commit` (a labeled task whose file changed or went since) is served from that commit.
Files are streamed in blocks from the requested range only: the `ranged_fileresponse` package
Label Studio uses reads the whole file into memory to learn its size (2 GiB per request of a
2 GiB file), so it is not used here.
"""

import mimetypes
import os

from django.http import HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated

from .. import mount_client
from ..access import may_use
from ..mount_client import MountServerError
from ..storage.models import PachydermImportStorage, PachydermImportStorageLink, mount_folder
from ..storage.paths import BadPath, safe_join
from ..storage.source_sync import COMMIT_FIELD


def _text(status: int, message: str) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _etag(stat) -> str:
    return f'"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"'


BLOCK = 256 * 1024


def _byte_range(header, size: int):
    """(start, stop) of a single `bytes=` range, None to send everything (no header, several
    ranges or a form we do not read), or False when it cannot be satisfied (416)."""
    if not header or not header.strip().lower().startswith("bytes=") or "," in header:
        return None
    first, _, last = header.split("=", 1)[1].strip().partition("-")
    try:
        if not first:
            start, stop = max(size - int(last), 0), size
        else:
            start = int(first)
            stop = min(int(last) + 1, size) if last else size
    except ValueError:
        return None
    if start < 0 or start >= size or stop <= start:
        return False
    return start, stop


def _blocks(handle, start: int, stop: int):
    try:
        handle.seek(start)
        left = stop - start
        while left > 0:
            data = handle.read(min(BLOCK, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        handle.close()


def _matches(header, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _commit_path(storage, path: str, commit: str) -> str:
    """`path` as commit `commit` holds it, for a task of this storage that records that commit
    (a labeled task whose file changed or went since; see source_sync._pinned). Other commits of
    the repo are not served here: the storage shows its branch, not the repo's whole history."""
    tasks = PachydermImportStorageLink.objects.filter(storage=storage, key=path).values_list("task__data", flat=True)
    if not any(isinstance(data, dict) and data.get(COMMIT_FIELD) == commit for data in tasks):
        raise MountServerError(f"no task of this storage shows it at commit {commit}", 404)
    spec = storage.commit_view_spec(commit)
    root = mount_folder(spec["name"])
    if not os.path.isdir(root):
        mount_client.mount(spec)
    return safe_join(root, path)


def _open(storage, full: str, commit: str):
    """A commit view unmounted for idleness between our check and the open is mounted again."""
    try:
        return open(full, "rb")
    except FileNotFoundError:
        spec = storage.commit_view_spec(commit) if commit else None
        if spec is None or os.path.isdir(mount_folder(spec["name"])):
            raise
        mount_client.mount(spec)
        return open(full, "rb")


@extend_schema(exclude=True)
@api_view(["GET", "HEAD"])
@permission_classes([IsAuthenticated])
def pachyderm_file(request, storage_id: int):
    storage = PachydermImportStorage.objects.filter(id=storage_id).select_related("project").first()
    if storage is None:
        return _text(404, f"no Pachyderm storage {storage_id}")
    if not may_use(request.user, storage.project):
        return _text(403, "you may not see this project")
    path = request.GET.get("path", "")
    if not path:
        return _text(400, 'query parameter "path" is required')
    commit = request.GET.get("commit", "")
    where = storage.describe(commit)
    try:
        full = _commit_path(storage, path, commit) if commit else storage.local_path(path)
    except BadPath as exc:
        return _text(400, str(exc))
    except MountServerError as exc:
        return _text(404 if exc.status == 404 else 503, f"{path} cannot be read at {where}: {exc}")
    try:
        handle = _open(storage, full, commit)
    except MountServerError as exc:
        return _text(404 if exc.status == 404 else 503, f"{path} cannot be read at {where}: {exc}")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return _text(404, f"{path} not found in {where}")
    except OSError as exc:
        return _text(503, f"{path} cannot be read now ({exc.strerror or exc.__class__.__name__})")
    stat = os.fstat(handle.fileno())
    if not os.path.isfile(full):
        handle.close()
        return _text(404, f"{path} is not a file in {where}")
    etag = _etag(stat)
    if _matches(request.META.get("HTTP_IF_NONE_MATCH"), etag):
        handle.close()
        response = HttpResponseNotModified()
        response["ETag"] = etag
        return response
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    size = stat.st_size
    wanted = _byte_range(request.META.get("HTTP_RANGE"), size)
    if wanted is False:
        handle.close()
        response = _text(416, f"range {request.META.get('HTTP_RANGE')} is outside the file ({size} bytes)")
        response["Content-Range"] = f"bytes */{size}"
        return response
    start, stop = wanted or (0, size)
    if request.method == "HEAD":
        handle.close()
        response = HttpResponse(status=206 if wanted else 200, content_type=content_type)
    else:
        response = StreamingHttpResponse(
            _blocks(handle, start, stop), status=206 if wanted else 200, content_type=content_type
        )
    response["Content-Length"] = str(stop - start)
    if wanted:
        response["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    response["Accept-Ranges"] = "bytes"
    return response
