"""Datum mode, as pachctl mount-server v2.8's `/datums` routes: a pipeline input spec becomes its
datums, and one datum at a time is shown as read-only mounts of just that datum's files.

Which datums an input makes is `pachstudio.datums` (shared with the job runner); this module
resolves each input's branch to its head commit once, so every datum of one `_mount` reads the
same commits, and swaps the mounts when the user steps through them. Unlike pachctl, entering
datum mode unmounts only the previous datum's mounts (and read-only mounts whose name a datum
mount needs): Label Studio's mounts share this server and must not be dropped, or committed, by
someone browsing datums.
"""

import copy
import threading
from dataclasses import dataclass
from typing import Optional

from pachyderm_sdk.api import pfs

from .. import datums as datum_rules
from ..rules import MAX_NAME, clean_path, is_name
from .errors import BadRequest, Conflict, MountError
from .table import MountSpec, MountTable


@dataclass
class DatumPosition:
    """What `_mount`, `_next` and `_prev` answer (pachctl's MountDatumResponse)."""

    id: str
    idx: int
    num_datums: int
    all_datums_received: bool


@dataclass
class DatumsState:
    """What `GET /datums` answers (pachctl's DatumsResponse); zero values when none are mounted."""

    num_datums: int
    input: Optional[dict]
    idx: int
    all_datums_received: bool


def pachctl_mount_name(pfs_input: dict) -> str:
    """pachctl's default mount name of an input: `<project>_<repo>`, plus `_<branch>` off master."""
    name = f"{pfs_input['project']}_{pfs_input['repo']}"
    return name if pfs_input["branch"] == "master" else f"{name}_{pfs_input['branch']}"


def with_defaults(spec) -> dict:
    """A copy of the input spec with pachctl's defaults in every pfs input (project `default`,
    branch `master`, the mount name); BadRequest for what pachctl refuses."""
    if not isinstance(spec, dict) or not spec:
        raise BadRequest('input: give the pipeline input spec, e.g. {"input": {"pfs": {"repo": ..., "glob": "/*"}}}')
    spec = copy.deepcopy(spec)
    _fill(spec)
    return spec


def _fill(spec) -> None:
    if not isinstance(spec, dict):
        raise BadRequest(f"input: an input must be an object, not {type(spec).__name__}")
    for kind in ("cross", "union", "join", "group"):
        if isinstance(spec.get(kind), list):
            for sub in spec[kind]:
                _fill(sub)
    p = spec.get("pfs")
    if not isinstance(p, dict):
        return
    if p.get("commit"):
        raise BadRequest("input: cannot specify commit in mounting datums Input (datums follow a branch)")
    p["project"] = p.get("project") or "default"
    p["branch"] = p.get("branch") or "master"
    for field in ("project", "repo", "branch"):
        value = p.get(field)
        if not isinstance(value, str) or not is_name(value) or len(value) > MAX_NAME:
            raise BadRequest(f"input: pfs {field} {value!r} is not a Pachyderm name (letters, digits, _ and -)")
    if not p.get("name"):
        p["name"] = pachctl_mount_name(p)


class DatumMounts:
    """The datum being shown and how to get to the others; one lock orders every step."""

    def __init__(self, table: MountTable):
        self.table = table
        self.lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self.input: Optional[dict] = None
        self.datums: list = []
        self.idx = -1
        self.heads: dict = {}  # (project, repo, branch) -> commit id every datum reads
        self.shown: list = []  # names of the mounts of the datum shown now

    # -- the routes -------------------------------------------------------------------------
    def mount(self, spec) -> DatumPosition:
        """Lists the datums of `spec` and shows the first; a bad spec changes nothing."""
        spec = with_defaults(spec)
        heads: dict = {}
        try:
            found = datum_rules.datums(spec, lambda project, repo, branch: self._files(heads, project, repo, branch))
        except datum_rules.DatumError as e:
            raise BadRequest(f"input: {e}") from None
        if not found:
            raise BadRequest("spec produces zero datums; nothing to mount")
        with self.lock:
            try:
                self._show(found[0], heads)
            except MountError as e:
                if not isinstance(e, Conflict):  # a Conflict is raised before anything changed
                    self.input, self.datums, self.idx, self.heads = None, [], -1, {}
                raise
            self.input, self.datums, self.idx, self.heads = spec, found, 0, heads
            return self._position()

    def step(self, by: int) -> DatumPosition:
        with self.lock:
            if not self.datums:
                raise BadRequest("no datums mounted; PUT /datums/_mount with an input spec first")
            idx = self.idx + by
            if idx < 0:
                raise BadRequest("already at first datum")
            if idx >= len(self.datums):
                raise BadRequest("already at last datum")
            self._show(self.datums[idx], self.heads)  # failed: `idx` stays, and the same step can be retried
            self.idx = idx
            return self._position()

    def state(self) -> DatumsState:
        with self.lock:
            if not self.datums:
                return DatumsState(num_datums=0, input=None, idx=0, all_datums_received=False)
            return DatumsState(num_datums=len(self.datums), input=self.input, idx=self.idx, all_datums_received=True)

    def reset(self) -> None:
        """Leaves datum mode (after `_unmount_all` took every mount down)."""
        with self.lock:
            self._clear()

    # -- helpers ----------------------------------------------------------------------------
    def _position(self) -> DatumPosition:
        return DatumPosition(
            id=self.datums[self.idx].id, idx=self.idx, num_datums=len(self.datums), all_datums_received=True
        )

    def _files(self, heads: dict, project: str, repo: str, branch: str) -> list:
        """(path, hash) of every file at the branch's newest finished commit, which is noted so
        all datums read that commit (the hash is not needed here)."""
        key = (project, repo, branch)
        if key not in heads:
            r = self.table._repo(MountSpec(name="datum", project=project, repo=repo, branch=branch))
            info, _ = self.table._finished_head(r, branch)
            heads[key] = info.commit.id
        commit = pfs.Commit(id=heads[key], repo=pfs.Repo(name=repo, type="user", project=pfs.Project(name=project)))
        return [("/" + path.lstrip("/"), "") for path, is_dir, _ in self.table.remote.walk(commit, "/") if not is_dir]

    def _specs(self, datum, heads: dict) -> list:
        """One read-only mount per input name, showing the paths the datum holds from it."""
        by_name: dict = {}
        for i in datum.inputs:
            spec = by_name.setdefault(i.name, (i, set()))
            spec[1].add(clean_path(i.path))
        out = []
        for name, (i, paths) in by_name.items():
            out.append(
                MountSpec(
                    name=name,
                    project=i.project,
                    repo=i.repo,
                    branch=i.branch,
                    commit=heads[(i.project, i.repo, i.branch)],
                    mode="ro",
                    paths=() if "/" in paths else tuple(sorted(paths)),
                )
            )
        return out

    def _show(self, datum, heads: dict) -> None:
        specs = self._specs(datum, heads)
        for spec in specs:
            other = self.table.find(spec.name)
            if other is not None and spec.name not in self.shown and other.spec.mode == "rw":
                raise Conflict(
                    f"mount {spec.name} is a read-write mount; unmount it first (its staged changes are "
                    "committed) or give this input another 'name'"
                )
        for name in self.shown:
            if self.table.find(name) is not None:
                self.table.unmount(name)
        for spec in specs:
            other = self.table.find(spec.name)
            if other is not None and other.spec != spec:
                self.table.unmount(spec.name)  # read-only: nothing to lose, pachctl unmounts all
        self.shown = []
        for spec in specs:
            self.table.mount(spec)
            self.shown.append(spec.name)
