"""Mounts given back when storages go: thin glue over the mount server's `_unmount`.

A deleted storage's mount is unmounted when no other Pachyderm storage (Source or Target, any
project) uses it; a Source's per-commit views (`ls_at_`) of its repo go with the last Source of that
repo. A Target's read-write mount holding staged labels is kept by the mount server
(`keep_staged`), never committed or dropped behind the user's back: a record under
`<data dir>/pachyderm-kept/` remembers whose it was, so the organization's users can list it, sync
it (one commit, then it is unmounted) or discard it (`/api/storages/export/pachyderm/kept`).
"""

import json
import logging
import os
from typing import Optional

from django.conf import settings

from .. import mount_client
from ..mount_client import MountServerError

logger = logging.getLogger(__name__)

KEPT_PREFIX = "kept: "


def _storages():
    from .models import PachydermExportStorage, PachydermImportStorage

    return PachydermImportStorage, PachydermExportStorage


def _used_elsewhere(storage) -> bool:
    for model in _storages():
        others = model.objects.filter(repo=storage.repo)
        if isinstance(storage, model):
            others = others.exclude(pk=storage.pk)
        if any(other.mount == storage.mount for other in others):
            return True
    return False


def _record_path(name: str) -> str:
    return os.path.join(settings.BASE_DATA_DIR, "pachyderm-kept", f"{name}.json")


def record(name: str) -> Optional[dict]:
    try:
        with open(_record_path(name)) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def forget(name: str) -> None:
    try:
        os.unlink(_record_path(name))
    except FileNotFoundError:
        pass


def _remember(name: str, storage, status: str) -> None:
    os.makedirs(os.path.dirname(_record_path(name)), exist_ok=True)
    data = {
        "mount": name,
        "organization": storage.project.organization_id if storage.project_id else None,
        "project": storage.project_id,
        "storage": storage.pk,
        "title": storage.title or "",
        "repo": storage.describe(),
        "status": status,
    }
    tmp = _record_path(name) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, _record_path(name))


def _unmount(names: list, **flags) -> dict:
    try:
        return mount_client.call("PUT", "/_unmount", {"mounts": names, **flags}) or {}
    except MountServerError as exc:
        if exc.status != 404:  # 404: not mounted (never used, or already gone)
            raise
        return {}


def release(storage) -> Optional[str]:
    """Called once a storage row is deleted. Returns a notice when its mount was kept."""
    name = storage.mount
    if _used_elsewhere(storage):
        return None
    try:
        answer = _unmount([name], keep_staged=True)
        kept = next((m for m in answer.get("mounted", []) if m["name"] == name), None)
        if kept is not None and kept.get("status", "").startswith(KEPT_PREFIX):
            _remember(name, storage, kept["status"])
            notice = (
                f"Pachyderm mount {name} of {storage.describe()} is kept: it holds labels staged since the "
                "last Sync; sync or discard them at /api/storages/export/pachyderm/kept"
            )
            logger.warning("%s", notice)
            return notice
        if storage.mount_mode == "ro":
            _release_views(storage)
    except MountServerError as exc:
        logger.warning("storage %s deleted; its mount %s not given back: %s", storage.pk, name, exc)
    return None


def _release_views(storage) -> None:
    """The per-commit views of the repo, once no Source of that repo remains."""
    source = _storages()[0]
    if source.objects.filter(repo=storage.repo).exclude(pk=storage.pk).exists():
        return
    listing = mount_client.call("GET", "/mounts") or {}
    views = [
        m["name"]
        for m in listing.get("mounted", [])
        if m["name"].startswith("ls_at_") and m["repo"] == storage.repo and m["project"] == storage.project_name
    ]
    if views:
        _unmount(views, discard=True)


def kept_mounts(organization_id) -> list:
    """The kept mounts of the organization's deleted Targets, as the mount server reports them."""
    listing = mount_client.call("GET", "/mounts") or {}
    out = []
    for m in listing.get("mounted", []):
        rec = record(m["name"])
        if rec and rec.get("organization") == organization_id:
            if not m.get("status", "").startswith(KEPT_PREFIX):
                continue  # adopted by a new Target since
            staged = mount_client.staged(m["name"])
            out.append({**rec, "status": m["status"], "staged": {k: len(v) for k, v in staged.items()}})
    return out


def settle(name: str, organization_id, action: str) -> dict:
    """`sync`: one commit of what the kept mount staged (the mount server then unmounts it);
    `discard`: drop it and unmount. Only the organization's own kept mounts."""
    rec = record(name)
    if not rec or rec.get("organization") != organization_id:
        raise MountServerError(f"no kept mount named {name}", 404)
    if action == "sync":
        answer = mount_client.commit(name, f"Label Studio: labels staged by deleted storage {rec.get('storage')}")
        result = {k: answer.get(k) for k in ("commit", "added", "changed", "deleted", "message")}
    else:
        _unmount([name], discard=True)
        result = {"message": f"discarded what {name} staged and unmounted it"}
    forget(name)
    return result
