"""The mounts: mounting, refreshing, committing and unmounting, remembered across restarts.

`mounts.json` under the state folder lists the mounts; a restarted server mounts them again, so
`<mount-dir>/<name>` keeps showing the same staged view. A commit of a read-write mount is one
StartCommit, one ModifyFile holding every staged change, one FinishCommit; the commit id is
written down before the upload so a crash in between is cleaned up by the next `_commit`.
"""

import json
import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator, Optional

import betterproto
from pachyderm_sdk.api import auth as pfs_auth, pfs

from .. import pfswire
from ..rules import clean_path
from .cache import ContentCache
from .errors import BadRequest, Conflict, MountError, NotFound, Refused, Unavailable
from .readonly import CommitTree
from .remote import Remote
from .staging import Plan, StagingArea, _write_json
from .view import View

log = logging.getLogger("pachstudio.mount")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+=-]{0,199}$")
UPLOAD_CHUNK = 4 << 20


READ_PERMISSIONS = ("REPO_READ", "REPO_LIST_COMMIT", "REPO_LIST_BRANCH", "REPO_LIST_FILE")


def authorization(info) -> str:
    """pachctl mount-server's reading of RepoInfo.auth_info: `off` when the cluster sent none
    (auth off), else `write` (REPO_WRITE), `read` (its four read permissions) or `none`."""
    auth_info = info.auth_info
    if auth_info is None or not betterproto.serialized_on_wire(auth_info):
        return "off"
    have = {pfs_auth.Permission(p).name for p in auth_info.permissions}
    if not all(p in have for p in READ_PERMISSIONS):
        return "none"
    return "write" if "REPO_WRITE" in have else "read"


@dataclass(frozen=True)
class MountSpec:
    name: str
    project: str = "default"
    repo: str = ""
    branch: str = "master"
    commit: Optional[str] = None
    mode: str = "ro"
    paths: tuple = ()  # read-only mounts may show only these paths
    # read-only: unmounted after this many seconds without use (0: never). Not part of the mount's
    # identity: the same view asked for with another idle time is still the same mount.
    idle: int = field(default=0, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "paths", tuple(self.paths or ()))  # a list once read from JSON

    def describe(self) -> str:
        at = self.commit or self.branch
        return f"{self.project}/{self.repo}@{at} ({self.mode})"


def finished(info) -> bool:
    """betterproto reads an unset Timestamp as 1970-01-01, which is truthy: compare, don't test."""
    return info.finished is not None and info.finished.timestamp() > 0


def finished_head(remote: Remote, repo: pfs.Repo, branch: str, create: bool = False):
    """(CommitInfo of the newest finished commit of a branch, id of the branch head): an open head
    is being written by someone. `create`: a missing branch is made (a Target's)."""
    b = pfs.Branch(repo=repo, name=branch)
    try:
        info = remote.inspect_branch(b)
    except NotFound:
        if not create:
            raise NotFound(f"branch {branch} not found in repo {repo.project.name}/{repo.name}") from None
        remote.create_branch(b)
        info = remote.inspect_branch(b)
    head = info.head
    for _ in range(100):
        c = remote.inspect_commit(pfs.Commit(id=head.id, repo=repo, branch=b))
        if finished(c) or not c.parent_commit or not c.parent_commit.id:
            return c, head.id
        head = c.parent_commit
    return c, head.id


def check_mount_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise BadRequest(
            f"mount name {name!r}: use letters, digits and _ . - @ + = (no '/', "
            "at most 200 characters, not starting with a dot)"
        )
    return name


@dataclass
class MountInfo:
    """A mount as GET /mounts describes it (MountState in docs/INTERFACES.md)."""

    name: str
    project: str
    repo: str
    branch: str
    commit: Optional[str]
    mode: str
    paths: list[str]
    state: str
    status: str
    mountpoint: str
    latest_commit: Optional[str]
    how_many_commits_behind: int


@dataclass
class RepoInfo:
    project: str
    repo: str
    branches: list
    authorization: str = "off"  # off | none | read | write, as pachctl mount-server derives it


@dataclass
class Listing:
    mounted: list  # MountInfo
    unmounted: list  # RepoInfo of every repo, as pachctl (empty when the cluster is down)
    failed: list  # MountInfo (state "error") of remembered mounts that could not mount again


@dataclass
class CommitResult:
    commit: Optional[str]
    added: int
    changed: int
    deleted: int
    message: str


@dataclass
class Staged:
    added: list
    changed: list
    deleted: list


class Mount:
    def __init__(self, spec: MountSpec, view: View):
        self.spec, self.view = spec, view
        self.state, self.status = "mounted", ""
        self.commit_lock = threading.Lock()
        self.latest: Optional[str] = None
        self.used = time.monotonic()  # last access through the file system (idle reclaim)
        self.kept = False  # its last user is gone but it holds staged changes (unmount keep_staged)

    @property
    def commit_id(self) -> str:
        return self.view.commit_id


class MountTable:
    """The mounts by name. `lock` guards only the dicts (no cluster or disk I/O under it); one
    lock a name orders the mounting, committing and unmounting of that name."""

    def __init__(self, remote: Remote, state_dir: str, mount_dir: str, cache: ContentCache):
        self.remote, self.state_dir, self.mount_dir, self.cache = remote, state_dir, mount_dir, cache
        self.mounts: dict[str, Mount] = {}
        self.failed: dict[str, tuple[MountSpec, str]] = {}
        self.lock = threading.RLock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._save_lock = threading.Lock()
        self._path = os.path.join(state_dir, "mounts.json")

    def _name_lock(self, name: str) -> threading.Lock:
        with self.lock:
            return self._name_locks.setdefault(name, threading.Lock())

    # -- persistence --------------------------------------------------------------------------
    def _save(self) -> None:
        """Writes the table as it is now; writers queue, and each writes a fresh copy."""
        with self._save_lock:
            with self.lock:
                specs = [dict(asdict(m.spec), kept=m.kept) for m in self.mounts.values()]
                specs += [asdict(spec) for spec, _ in self.failed.values()]
            _write_json(self._path, specs)

    def restore(self) -> None:
        """Mounts again what was mounted before a restart; failures stay listed, not lost."""
        try:
            with open(self._path) as f:
                saved = json.load(f)
        except FileNotFoundError:
            return
        for entry in saved:
            kept = entry.pop("kept", False)
            spec = MountSpec(**entry)
            try:
                mount = self._mount(spec)
                if kept:
                    self._mark_kept(mount)
            except MountError as e:
                log.warning("could not mount %s again: %s", spec.name, e.message)
                with self.lock:
                    self.failed[spec.name] = (spec, e.message)

    # -- what the FUSE side reads -------------------------------------------------------------
    def find(self, name: str) -> Optional[Mount]:
        """The mount a file-system call names; counts as a use for the idle reclaim."""
        mount = self.mounts.get(name)
        if mount is not None:
            mount.used = time.monotonic()
        return mount

    def names(self) -> list:
        with self.lock:
            return list(self.mounts)

    # -- cluster lookups ----------------------------------------------------------------------
    def _repo(self, spec: MountSpec) -> pfs.Repo:
        repo = pfs.Repo(name=spec.repo, type="user", project=pfs.Project(name=spec.project))
        try:
            info = self.remote.inspect_repo(repo)
        except NotFound:
            raise NotFound(f"repo {spec.project}/{spec.repo} not found") from None
        access = authorization(info)
        name = f"{spec.project}/{spec.repo}"
        if access == "none":  # pachctl's words, with the project
            raise Refused(f"user doesn't have read permission on repo {name} (it needs REPO_READ)")
        if spec.mode == "rw" and access == "read":
            raise Refused(
                f"can't create writable mount since user doesn't have write access on repo {name} (it needs REPO_WRITE)"
            )
        return repo

    def _finished_head(self, repo: pfs.Repo, branch: str, create: bool = False):
        return finished_head(self.remote, repo, branch, create)

    def _tree(self, repo: pfs.Repo, info, paths: tuple = ()) -> CommitTree:
        commit = pfs.Commit(id=info.commit.id, repo=repo)
        mtime = info.finished.timestamp() if finished(info) else time.time()
        return CommitTree(self.remote, commit, self.cache, mtime, only=paths)

    # -- mounting -----------------------------------------------------------------------------
    def mount(self, spec: MountSpec) -> MountInfo:
        return self.info(self._mount(spec))

    def _mount(self, spec: MountSpec) -> Mount:
        check_mount_name(spec.name)
        if spec.mode not in ("ro", "rw"):
            raise BadRequest(f'mode {spec.mode!r}: use "ro" or "rw"')
        if spec.mode == "rw" and spec.commit:
            raise BadRequest('commit: a read-write mount follows a branch; pin a commit only with mode "ro"')
        if spec.mode == "rw" and spec.paths:
            raise BadRequest(
                "paths: only a read-only mount shows part of a repo; a read-write mount shows its whole branch"
            )
        with self._name_lock(spec.name):
            existing = self.mounts.get(spec.name)
            if existing is not None:
                if existing.spec == spec:
                    existing.used = time.monotonic()
                    if existing.kept:  # a new user of a kept mount: its staged changes are theirs now
                        existing.kept, existing.status = False, ""
                        self._save()
                    return existing
                raise Conflict(
                    f"mount {spec.name} already holds {existing.spec.describe()}; "
                    f"unmount it first to mount {spec.describe()}"
                )
            repo = self._repo(spec)
            if spec.commit:
                try:
                    info = self.remote.inspect_commit(pfs.Commit(id=spec.commit, repo=repo))
                except NotFound:
                    raise NotFound(f"commit {spec.commit} not found in repo {spec.project}/{spec.repo}") from None
                mount = Mount(spec, self._tree(repo, info, spec.paths))
            elif spec.mode == "ro":
                info, head = self._finished_head(repo, spec.branch)
                mount = Mount(spec, self._tree(repo, info, spec.paths))
                mount.latest = head
            else:
                mount = self._mount_rw(spec, repo)
            with self.lock:
                self.mounts[spec.name] = mount
                self.failed.pop(spec.name, None)
            self._save()
            log.info("mounted %s at %s/%s", spec.describe(), self.mount_dir, spec.name)
            return mount

    def _mount_rw(self, spec: MountSpec, repo: pfs.Repo) -> Mount:
        folder = os.path.join(self.state_dir, "staging", spec.name)
        meta_path = os.path.join(folder, "meta.json")
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                before = json.load(f).get("spec")
            if before and MountSpec(**before) != spec:
                raise Conflict(
                    f"mount name {spec.name} has staged changes for "
                    f"{MountSpec(**before).describe()}; mount that again and commit "
                    "or discard them, or pick another name"
                )
        info, head = self._finished_head(repo, spec.branch, create=True)
        staging = StagingArea(folder, self._tree(repo, info))
        staging.set_meta(spec=asdict(spec))
        mount = Mount(spec, staging)
        mount.latest = head
        if staging.frozen is not None:
            try:
                self._recover(mount, repo)
            except Unavailable as e:
                mount.status = f"an interrupted commit is cleaned up at the next _commit: {e}"
        return mount

    def get(self, name: str) -> Mount:
        check_mount_name(name)
        with self.lock:
            mount = self.mounts.get(name)
        if mount is None:
            raise NotFound(f"no mount named {name}")
        return mount

    def unmount(self, name: str, discard: bool = False, commit: bool = False, keep_staged: bool = False) -> bool:
        """Staged changes are committed first (as pachctl does), unless `discard` (and not
        `commit`) says to drop them; a failed commit leaves the mount as it was. With `keep_staged`
        a mount holding staged changes stays, marked kept (its user is gone): it goes once they are
        committed (`_commit`) or discarded (`_unmount` with `discard`). False when it stayed."""
        with self._name_lock(name):
            mount = self.get(name)
            if keep_staged and not (discard or commit) and mount.view.writable and mount.view.has_changes():
                self._mark_kept(mount)
                self._save()
                log.info("kept %s: it holds staged changes", name)
                return False
            mount.kept = False  # from here on it goes (commit() must not unmount it a second time)
            if mount.view.has_changes() and (commit or not discard):
                self.commit(name)
            with self.lock:
                self.mounts.pop(name, None)
            mount.view.discard()
            self._save()
        log.info("unmounted %s", name)
        return True

    def _mark_kept(self, mount: Mount) -> None:
        staged = mount.view.staged()
        n = sum(len(v) for v in staged.values())
        mount.kept = True
        mount.status = (
            f"kept: no storage uses it any more but it holds {n} staged changes; "
            "PUT /_commit commits them (then it is unmounted), PUT /_unmount with discard drops them"
        )

    def reclaim_idle(self) -> list:
        """Unmounts the read-only mounts asked with an idle time that have not been used for that
        long; a later mount request makes them again. Returns their names."""
        now = time.monotonic()
        with self.lock:
            idle = [
                m.spec.name
                for m in self.mounts.values()
                if m.spec.idle > 0 and m.spec.mode == "ro" and now - m.used >= m.spec.idle
            ]
        gone = []
        for name in idle:
            try:
                with self._name_lock(name):
                    mount = self.mounts.get(name)
                    if mount is None or time.monotonic() - mount.used < mount.spec.idle:
                        continue  # used again meanwhile
                    with self.lock:
                        self.mounts.pop(name, None)
                    mount.view.discard()
                gone.append(name)
                log.info("unmounted %s: unused for %d s", name, mount.spec.idle)
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("reclaiming idle mount %s", name)
        if gone:
            self._save()
        return gone

    def start_idle_reclaim(self, every: float = 5.0) -> None:
        def loop():
            while True:
                time.sleep(every)
                self.reclaim_idle()

        threading.Thread(target=loop, name="idle-reclaim", daemon=True).start()

    def unmount_all(self, discard: bool = False, commit: bool = False) -> None:
        """Every mount (as `unmount`), and forgets the ones that failed to mount."""
        for name in self.names():
            self.unmount(name, discard=discard, commit=commit)
        with self.lock:
            self.failed.clear()
        self._save()

    def refresh(self, name: str) -> MountInfo:
        """A branch mount moved to the branch head (a read-write one keeps its staged changes)."""
        mount = self.get(name)
        if not mount.spec.commit:
            repo = mount.view.base.commit.repo
            with mount.commit_lock:
                info, head = self._finished_head(repo, mount.spec.branch)
                mount.latest = head
                if info.commit.id != mount.commit_id:
                    mount.view = mount.view.moved(self._tree(repo, info, mount.spec.paths))
        return self.info(mount)

    # -- committing ---------------------------------------------------------------------------
    def _recover(self, mount: Mount, repo: pfs.Repo) -> None:
        """An upload that did not finish (failure or crash): keep it if it made it, else undo it."""
        staging = mount.view
        if staging.frozen is None:
            return
        open_id = staging.open_commit or self._started_commit(repo, mount.spec.branch, staging.meta.get("starting"))
        if open_id:
            try:
                info = self.remote.inspect_commit(pfs.Commit(id=open_id, repo=repo))
                if finished(info):
                    staging.complete(self._tree(repo, info))
                    return
                self.remote.drop_commit(open_id)
                log.info("dropped the unfinished commit %s of mount %s", open_id, mount.spec.name)
            except NotFound:
                pass
        staging.merge_back()

    def _started_commit(self, repo: pfs.Repo, branch: str, starting: Optional[dict]) -> Optional[str]:
        """A crash between StartCommit and recording its id leaves a commit only this can find:
        the branch's open head, on the recorded parent, with the recorded description."""
        if not starting:
            return None
        head = self.remote.inspect_branch(pfs.Branch(repo=repo, name=branch)).head
        if not head or not head.id or head.id == starting.get("parent"):
            return None
        info = self.remote.inspect_commit(pfs.Commit(id=head.id, repo=repo))
        parent = info.parent_commit.id if info.parent_commit else None
        if finished(info) or parent != starting.get("parent") or info.description != starting.get("description"):
            return None
        return head.id

    def recover_pending(self) -> None:
        """Cleans up uploads cut by an unreachable cluster as soon as it answers again, so the
        branch is back to its old head without waiting for the next `_commit`."""
        for mount in list(self.mounts.values()):
            if not mount.view.writable or mount.view.frozen is None:
                continue
            if not mount.commit_lock.acquire(blocking=False):
                continue
            try:
                self._recover(mount, mount.view.base.commit.repo)
                mount.status = ""
            except MountError:
                pass
            finally:
                mount.commit_lock.release()

    def start_recovery(self, every: float = 2.0) -> None:
        def loop():
            while True:
                time.sleep(every)
                try:
                    self.recover_pending()
                except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                    log.exception("recovering interrupted commits")

        threading.Thread(target=loop, name="recover", daemon=True).start()

    def commit(self, name: str, description: Optional[str] = None) -> CommitResult:
        mount = self.get(name)
        if not mount.view.writable:
            raise BadRequest(f'mount {name} is read-only; only "rw" mounts have changes to commit')
        staging, spec = mount.view, mount.spec
        repo = mount.view.base.commit.repo
        with mount.commit_lock:
            self._recover(mount, repo)
            mount.status = ""
            if not staging.freeze():
                return CommitResult(None, 0, 0, 0, "nothing to commit")
            plan = staging.plan(staging.frozen)
            if plan.empty:
                staging.merge_back()  # only empty folders: PFS keeps no folders without files
                return CommitResult(None, 0, 0, 0, "nothing to commit")
            try:
                info = self._upload(mount, repo, plan, description)
            except MountError as e:
                try:
                    self._recover(mount, repo)
                except MountError:
                    mount.status = f"commit failed; retried at the next _commit: {e.message}"
                raise
            finally:
                mount.state = "mounted"
            staging.complete(self._tree(repo, info))
            mount.latest = info.commit.id
        counts = {"added": len(plan.added), "changed": len(plan.changed), "deleted": len(plan.deleted)}
        log.info("committed %s to %s: %s", name, info.commit.id, counts)
        if mount.kept and not staging.has_changes():  # what it was kept for is committed
            self.unmount(name)
        return CommitResult(
            info.commit.id,
            **counts,
            message=f"committed {counts['added']} added, {counts['changed']} "
            f"changed, {counts['deleted']} deleted files to "
            f"{spec.project}/{spec.repo}@{spec.branch}",
        )

    def _upload(self, mount: Mount, repo: pfs.Repo, plan: Plan, description: Optional[str]):
        spec = mount.spec
        if not description:
            description = (
                f"pachstudio mount {spec.name}: {len(plan.added)} added, "
                f"{len(plan.changed)} changed, {len(plan.deleted)} deleted"
            )
        branch = pfs.Branch(repo=repo, name=spec.branch)
        parent = self.remote.inspect_branch(branch).head
        mount.view.set_meta(starting={"parent": parent.id if parent else None, "description": description})
        commit = self.remote.start_commit(branch, description)
        mount.view.set_meta(open_commit=commit.id, starting=None)
        mount.state = "committing"
        self.remote.modify_file(self._requests(commit, plan))
        self.remote.finish_commit(commit)
        return self.remote.inspect_commit(pfs.Commit(id=commit.id, repo=repo), wait=True)

    @staticmethod
    def _requests(commit: pfs.Commit, plan: Plan) -> Iterator[bytes]:
        """The ModifyFile stream, encoded by hand (betterproto costs ~1 ms a message when busy).
        Overwrites delete first, as the SDK does; new files need only their content."""
        yield bytes(pfs.ModifyFileRequest(set_commit=commit))
        for path in plan.deletes:
            yield pfswire.delete_file(path)
        changed = set(plan.changed)
        for path, local in plan.puts:
            if path in changed:
                yield pfswire.delete_file(path)
            with open(local, "rb") as f:
                chunk = f.read(UPLOAD_CHUNK)
                yield pfswire.add_file(path, chunk)
                while chunk := f.read(UPLOAD_CHUNK):
                    yield pfswire.add_file(path, chunk)

    # -- answers ------------------------------------------------------------------------------
    def listing(self) -> Listing:
        with self.lock:
            current = list(self.mounts.values())
            failed = list(self.failed.values())
        try:
            unmounted = self.repos()  # every repo, mounted or not, as pachctl: another branch may be mounted
        except MountError as e:
            log.warning("listing repos for /mounts: %s", e.message)
            unmounted = []
        return Listing(
            mounted=[self.info(m) for m in current],
            unmounted=unmounted,
            failed=[self.failed_info(spec, why) for spec, why in failed],
        )

    def repos(self) -> list:
        """RepoInfo of the cluster's user repos (not specs or metadata), by project and name."""
        out = []
        for info in self.remote.repos():
            if info.repo.type and info.repo.type != "user":
                continue
            access = authorization(info)
            out.append(
                RepoInfo(
                    project=info.repo.project.name if info.repo.project else "default",
                    repo=info.repo.name,
                    branches=[] if access == "none" else sorted(b.name for b in info.branches or []),
                    authorization=access,
                )
            )
        return out

    def info(self, mount: Mount) -> MountInfo:
        """The mount's state; for a branch mount asks the cluster how far the branch moved."""
        spec = mount.spec
        latest, behind = mount.latest or mount.commit_id, 0
        if not spec.commit:
            try:
                repo = mount.view.base.commit.repo
                head = self.remote.inspect_branch(pfs.Branch(repo=repo, name=spec.branch)).head
                latest = mount.latest = head.id
                if latest != mount.commit_id:
                    commits = self.remote.list_commits(
                        repo, pfs.Commit(id=latest, repo=repo), pfs.Commit(id=mount.commit_id, repo=repo)
                    )
                    behind = sum(1 for c in commits if c.commit.id != mount.commit_id)
            except MountError as e:
                mount.status = e.message
        return self._mount_info(spec, mount.commit_id, mount.state, mount.status, latest, behind)

    def failed_info(self, spec: MountSpec, reason: str) -> MountInfo:
        return self._mount_info(spec, spec.commit, "error", reason, None, 0)

    def _mount_info(self, spec: MountSpec, commit, state, status, latest, behind) -> MountInfo:
        return MountInfo(
            name=spec.name,
            project=spec.project,
            repo=spec.repo,
            branch=spec.branch,
            commit=commit,
            mode=spec.mode,
            paths=list(spec.paths),
            state=state,
            status=status,
            mountpoint=os.path.join(self.mount_dir, spec.name),
            latest_commit=latest,
            how_many_commits_behind=behind,
        )

    def staged(self, name: str) -> Staged:
        return Staged(**self.get(name).view.staged())

    def files(self, name: str, prefix: str, recursive: bool) -> Iterator[dict]:
        """{path, size, commit} of the files under `prefix` (staged ones with commit None)."""
        mount = self.get(name)
        prefix = clean_path(prefix)
        view = mount.view
        top = view.lookup(prefix)
        if top is None:
            return
        commit = mount.commit_id

        def row(path, e):
            return {"path": path.lstrip("/"), "size": e.size, "commit": None if e.local is not None else commit}

        if not top.is_dir:
            yield row(prefix, top)
        elif recursive:
            for path, e in view.walk(prefix):
                yield row(path, e)
        else:
            entries = view.listdir(prefix)
            for name in sorted(entries):
                if not entries[name].is_dir:
                    yield row(prefix.rstrip("/") + "/" + name, entries[name])

    def diff(self, name: str, since: str) -> Iterator[dict]:
        mount = self.get(name)
        repo = mount.view.base.commit.repo
        if not since:
            raise BadRequest("since: give the commit id to compare the mount's commit with")
        try:
            self.remote.inspect_commit(pfs.Commit(id=since, repo=repo))
        except NotFound:
            raise NotFound(f"commit {since} not found in repo {mount.spec.project}/{mount.spec.repo}") from None
        current = pfs.Commit(id=mount.commit_id, repo=repo)
        if since == mount.commit_id:
            return iter(())
        return self._diff(current, pfs.Commit(id=since, repo=repo), mount.view.base.visible)

    def _diff(self, new: pfs.Commit, old: pfs.Commit, visible=lambda path: True) -> Iterator[dict]:
        for d in self.remote.diff(new, old):
            n = d.new_file if d.new_file and d.new_file.file and d.new_file.file.path else None
            o = d.old_file if d.old_file and d.old_file.file and d.old_file.file.path else None
            info = n or o
            if info is None or info.file_type == pfs.FileType.DIR or not visible(info.file.path):
                continue
            change = "changed" if n and o else ("added" if n else "deleted")
            yield {"path": info.file.path.lstrip("/"), "change": change, "size": int(info.size_bytes or 0)}
