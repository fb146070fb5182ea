"""`pfs_v2.API` over the PFS engine, and the few admin and version calls tools make: messages in,
engine calls, messages out."""

from __future__ import annotations

import tarfile
from typing import Optional

from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import admin, auth, pfs, version

from ...pfswire import CommitInfoEncoder, FileInfoEncoder, bytes_value, field_bytes
from ..auth.engine import Auth
from ..auth.permissions import Permissions, caller
from ..errors import InvalidArgument, NotFound, Unknown
from ..rpc import ts
from . import paths as P
from .records import CommitRow, Entry, RepoRow
from .store import Store

VERSION = version.Version(major=2, minor=12, micro=2, additional="-pachstudio")
GET_CHUNK = 2 << 20  # well under the 19 MiB pachd uses; with bigger chunks peak memory grew, speed did not


class PfsService:
    def __init__(self, store: Store, auth: Optional[Auth] = None):
        self.store = store
        self.auth = auth
        self.perms = Permissions(auth)  # pachd's check of each call; none when auth is off

    def _auth_info(self, r: RepoRow) -> Optional[pfs.AuthInfo]:
        """The caller's permissions and roles on a repo, as pachd puts them in RepoInfo."""
        subject = caller()
        if self.auth is None or subject is None:
            return None
        perms, roles = self.auth.permissions(subject, "REPO", f"{r.project}/{r.name}")
        return pfs.AuthInfo(permissions=[auth.Permission[p] for p in perms], roles=roles)

    # -- translating references ---------------------------------------------------------------
    @staticmethod
    def _names(repo: Optional[pfs.Repo]) -> tuple[str, str, str]:
        """(project, name, type) of the repo a request names, pachd's defaults filled in, not
        looked up: pachd asks for permission before it looks a repo up."""
        if repo is None or not repo.name:
            raise InvalidArgument("a repo name is needed")
        return (repo.project.name if repo.project else "") or "default", repo.name, repo.type or "user"

    @classmethod
    def _commit_names(cls, commit: Optional[pfs.Commit]) -> tuple[str, str, str]:
        if commit is None:
            raise InvalidArgument("a commit is needed")
        if commit.repo and commit.repo.name:
            return cls._names(commit.repo)
        if commit.branch and commit.branch.repo and commit.branch.repo.name:
            return cls._names(commit.branch.repo)
        raise InvalidArgument("the commit names no repo")

    def _repo(self, repo: Optional[pfs.Repo], call: str = "") -> RepoRow:
        """The repo a request names, once the caller may make `call` on it."""
        names = self._names(repo)
        if call:
            self.perms.need(call, *names)
        return self.store.get_repo(*names)

    def _commit_repo(self, commit: pfs.Commit, call: str = "") -> RepoRow:
        names = self._commit_names(commit)
        if call:
            self.perms.need(call, *names)
        return self.store.get_repo(*names)

    def _commit(self, commit: pfs.Commit, call: str = "") -> tuple[RepoRow, CommitRow]:
        repo = self._commit_repo(commit, call)
        branch = commit.branch.name if commit.branch else ""
        return repo, self.store.resolve_commit(repo, commit.id, branch)

    def _is_set(self, commit: Optional[pfs.Commit]) -> bool:
        return bool(commit and (commit.id or (commit.branch and commit.branch.name)))

    # -- building messages --------------------------------------------------------------------
    def repo_msg(self, r: RepoRow) -> pfs.Repo:
        return pfs.Repo(name=r.name, type=r.type, project=pfs.Project(name=r.project))

    def commit_msg(self, r: RepoRow, c: CommitRow) -> pfs.Commit:
        """A commit as pachd 2.12 answers it: repo and id, `branch` cleared (its NilBranch
        interceptor clears it in every Commit, CommitInfo, FileInfo, BranchInfo.head, DiffFile and
        CommitSetInfo it sends)."""
        return pfs.Commit(repo=self.repo_msg(r), id=c.cid)

    def commit_info(self, r: RepoRow, c: CommitRow) -> pfs.CommitInfo:
        repo = self.repo_msg(r)
        info = pfs.CommitInfo(
            commit=self.commit_msg(r, c),
            origin=pfs.CommitOrigin(kind=getattr(pfs.OriginKind, c.origin, pfs.OriginKind.USER)),
            description=c.description or "",
            started=ts(c.started),
            finishing=ts(c.finishing),
            finished=ts(c.finished),
            error=c.error or "",
            size_bytes_upper_bound=c.size,
            details=pfs.CommitInfoDetails(size_bytes=c.size),
            created_at=ts(c.started),
        )
        parent, children, provenance = self.store.relations(c)
        if parent:
            info.parent_commit = pfs.Commit(repo=repo, id=parent)
        info.child_commits = [pfs.Commit(repo=repo, id=k) for k in children]
        info.direct_provenance = [pfs.Commit(repo=self.repo_msg(pr), id=pid) for pr, pid in provenance]
        return info

    def commit_info_bytes(self, encoder: CommitInfoEncoder, c: CommitRow) -> bytes:
        """commit_info(), encoded by pfswire (the same message, without betterproto's cost)."""
        parent, children, provenance = self.store.relations(c)
        origin = getattr(pfs.OriginKind, c.origin, pfs.OriginKind.USER)
        return encoder.encode(
            c.cid,
            int(origin),
            c.description or "",
            c.started,
            c.finishing,
            c.finished,
            c.error or "",
            c.size,
            parent,
            children,
            [(self.repo_msg(pr), pid) for pr, pid in provenance],
        )

    def file_info(self, commit: pfs.Commit, c: CommitRow, e: Entry) -> pfs.FileInfo:
        return pfs.FileInfo(
            file=pfs.File(commit=commit, path=e.path),
            file_type=pfs.FileType.DIR if e.is_dir else pfs.FileType.FILE,
            committed=ts(c.finished or c.started),
            size_bytes=e.size,
            hash=bytes.fromhex(e.hash) if e.hash else b"",
        )

    def branch_info(self, r: RepoRow, b: tuple) -> pfs.BranchInfo:
        name, head, created, updated = b
        repo = self.repo_msg(r)
        rel = self.store.branch_relations(r, name)

        def branches(key):
            return [pfs.Branch(repo=self.repo_msg(pr), name=pb) for pr, pb in rel[key]]

        return pfs.BranchInfo(
            branch=pfs.Branch(repo=repo, name=name),
            head=pfs.Commit(repo=repo, id=head),
            direct_provenance=branches("direct_provenance"),
            provenance=branches("provenance"),
            subvenance=branches("subvenance"),
            created_at=ts(created),
            updated_at=ts(updated),
        )

    def repo_info(self, r: RepoRow) -> pfs.RepoInfo:
        size = self.store.repo_size(r)
        repo = self.repo_msg(r)
        return pfs.RepoInfo(
            repo=repo,
            created=ts(r.created),
            description=r.description,
            size_bytes_upper_bound=size,
            details=pfs.RepoInfoDetails(size_bytes=size),
            branches=[pfs.Branch(repo=repo, name=b[0]) for b in self.store.list_branches(r)],
            auth_info=self._auth_info(r),
        )

    # -- projects -----------------------------------------------------------------------------
    def CreateProject(self, req: pfs.CreateProjectRequest, ctx):
        name = req.project.name if req.project else ""
        self.store.create_project(name, req.description, req.update)
        if self.auth is not None and caller() and not req.update:
            self.auth.create_binding("PROJECT", name, caller(), ["projectOwner"])
        return Empty()

    def _project_info(self, row) -> pfs.ProjectInfo:
        name, description, created = row
        return pfs.ProjectInfo(project=pfs.Project(name=name), description=description or "", created_at=ts(created))

    def InspectProject(self, req: pfs.InspectProjectRequest, ctx):
        return self._project_info(self.store.get_project(req.project.name if req.project else ""))

    def ListProject(self, req, ctx):
        for row in self.store.list_projects():
            yield self._project_info(row)

    def DeleteProject(self, req: pfs.DeleteProjectRequest, ctx):
        name = (req.project.name if req.project else "") or "default"
        self.perms.need("DeleteProject", name)
        self.store.delete_project(name, req.force)
        if self.auth is not None:
            self.auth.delete_binding("PROJECT", name)
        return Empty()

    # -- repos --------------------------------------------------------------------------------
    def CreateRepo(self, req: pfs.CreateRepoRequest, ctx):
        if req.repo is None or not req.repo.name:
            raise InvalidArgument("a repo name is needed")
        project, name, type_ = self._names(req.repo)
        existing = None
        if self.perms.subject:
            self.store.get_project(project)  # a missing project is NOT_FOUND before any permission
            self.perms.need("CreateRepo", project)
            existing = next((r for r in self.store.list_repos(type_, [project]) if r.name == name), None)
            if existing is not None and req.update and existing.description != req.description:
                self.perms.need("UpdateRepo", project, name, type_)
        self.store.create_repo(project, req.repo.name, type_, req.description, req.update)
        if self.auth is not None and caller() and existing is None and type_ == "user":
            self.auth.create_binding("REPO", f"{project}/{req.repo.name}", caller(), ["repoOwner"])
        return Empty()

    def InspectRepo(self, req: pfs.InspectRepoRequest, ctx):
        return self.repo_info(self._repo(req.repo))

    def ListRepo(self, req: pfs.ListRepoRequest, ctx):
        projects = [p.name or "default" for p in req.projects]
        for r in self.store.list_repos(req.type, projects):
            if not self.perms.may_see(r.project, r.name, r.type):
                continue  # pachd lists only the repos the caller may see
            yield self.repo_info(r)

    def DeleteRepo(self, req: pfs.DeleteRepoRequest, ctx):
        if req.repo is None or not req.repo.name:
            raise InvalidArgument("no repo specified")
        project = (req.repo.project.name if req.repo.project else "") or "default"
        if self.perms.subject:
            existing = [r for r in self.store.list_repos("", [project]) if r.name == req.repo.name]
            if existing and not self.perms.allowed("DeleteRepo", project, req.repo.name):
                return pfs.DeleteRepoResponse(deleted=False)  # pachd: not deleted, no error
        deleted = self.store.delete_repo(project, req.repo.name, req.repo.type or "user", req.force)
        if deleted and self.auth is not None and (req.repo.type or "user") == "user":
            self.auth.delete_binding("REPO", f"{project}/{req.repo.name}")
        return pfs.DeleteRepoResponse(deleted=deleted)

    def DeleteRepos(self, req: pfs.DeleteReposRequest, ctx):
        if not req.all and not req.projects:
            raise InvalidArgument("DeleteRepos needs projects or all")
        gone = self.store.delete_repos(
            [p.name or "default" for p in req.projects],
            req.all,
            allowed=lambda r: self.perms.allowed("DeleteRepo", r.project, r.name),  # pachd skips the others
        )
        if self.auth is not None:
            for r in gone:
                if r.type == "user":
                    self.auth.delete_binding("REPO", f"{r.project}/{r.name}")
        return pfs.DeleteReposResponse(repos=[self.repo_msg(r) for r in gone])

    def DeleteAll(self, req, ctx):
        """pachd deletes every project in the same transaction as the repos: a caller who may
        not delete one of them changes nothing."""
        for name, _, _ in sorted(self.store.list_projects(), key=lambda row: row[2]):
            self.perms.need("DeleteAll", name)
        self.store.delete_all()
        if self.auth is not None:
            self.auth.forget_resources(owner_of_default=caller())
        return Empty()

    # -- branches -----------------------------------------------------------------------------
    def CreateBranch(self, req: pfs.CreateBranchRequest, ctx):
        if req.branch is None or req.branch.repo is None:
            raise InvalidArgument("a branch with its repo is needed")
        repo = self._repo(req.branch.repo, "CreateBranch")
        head = None
        if self._is_set(req.head):
            head_repo, head = self._commit(req.head)
            if head_repo.id != repo.id:
                raise InvalidArgument(f"the head commit must be in repo {repo}")
        provenance = [(self._repo(b.repo), b.name) for b in req.provenance]
        self.store.create_branch(repo, req.branch.name, head, provenance)
        return Empty()

    def InspectBranch(self, req: pfs.InspectBranchRequest, ctx):
        repo = self._repo(req.branch.repo if req.branch else None)
        return self.branch_info(repo, self.store.get_branch(repo, req.branch.name))

    def ListBranch(self, req: pfs.ListBranchRequest, ctx):
        if (req.repo is None or not req.repo.name) and self.perms.subject:
            raise Unknown("Cannot list branches from all repos with auth activated")  # server_branch.go:435
        repo = self._repo(req.repo, "ListBranch")
        for b in self.store.list_branches(repo, req.reverse):
            yield self.branch_info(repo, b)

    def DeleteBranch(self, req: pfs.DeleteBranchRequest, ctx):
        repo = self._repo(req.branch.repo if req.branch else None, "DeleteBranch")
        self.store.delete_branch(repo, req.branch.name, req.force)
        return Empty()

    # -- commits ------------------------------------------------------------------------------
    def StartCommit(self, req: pfs.StartCommitRequest, ctx):
        parent = None
        if req.branch and req.branch.repo and req.branch.repo.name:
            repo = self._repo(req.branch.repo, "StartCommit")
        elif req.parent:
            repo = self._commit_repo(req.parent, "StartCommit")
        else:
            raise InvalidArgument("StartCommit needs a branch or a parent")
        if self._is_set(req.parent):
            parent_repo, parent = self._commit(req.parent)
        branch = req.branch.name if req.branch else ""
        return self.commit_msg(repo, self.store.start_commit(repo, branch, parent, req.description))

    def FinishCommit(self, req: pfs.FinishCommitRequest, ctx):
        _, c = self._commit(req.commit, "FinishCommit")
        self.store.finish_commit(c, req.description or None, req.error, req.force)
        return Empty()

    def InspectCommit(self, req: pfs.InspectCommitRequest, ctx):
        repo, c = self._commit(req.commit, "InspectCommit")
        if req.wait >= pfs.CommitState.READY and c.finished is None:
            c = self.store.wait_finished(c.id, lambda: not ctx.is_active())
        return self.commit_info(repo, c)

    def ListCommit(self, req: pfs.ListCommitRequest, ctx):
        repo = self._repo(req.repo, "ListCommit")
        to = self._commit(req.to)[1] if self._is_set(req.to) else None
        from_ = self._commit(req.from_)[1] if self._is_set(req.from_) else None
        encoder = CommitInfoEncoder(self.repo_msg(repo))  # by hand: a 1,000-commit history is a Versions page
        for c in self.store.list_commits(repo, to, from_, req.number, req.reverse):
            yield self.commit_info_bytes(encoder, c)

    def SubscribeCommit(self, req: pfs.SubscribeCommitRequest, ctx):
        repo = self._repo(req.repo, "SubscribeCommit")
        seen = set()
        if self._is_set(req.from_):
            _, start = self._commit(req.from_)
            seen.update(c.id for c in self.store.branch_commits(repo, req.branch) if c.seq <= start.seq)
        want_finished = req.state >= pfs.CommitState.READY
        while ctx.is_active():
            for c in self.store.branch_commits(repo, req.branch):
                if c.id in seen or (want_finished and c.finished is None):
                    continue
                seen.add(c.id)
                yield self.commit_info(repo, c)
            self.store.wait_for_change(0.5)

    def _commit_set(self, commit_set: Optional[pfs.CommitSet]) -> str:
        if commit_set is None or not commit_set.id:
            raise InvalidArgument("a commit set id is needed")
        return commit_set.id

    def InspectCommitSet(self, req: pfs.InspectCommitSetRequest, ctx):
        """Every commit of the set (one id in several repos), oldest first; with `wait`, each
        once it is finished."""
        cid = self._commit_set(req.commit_set)
        rows = [(self.store.repo_of(c), c) for c in self.store.commit_set(cid)]
        shown = [(repo, c) for repo, c in rows if self._may_inspect(repo)]
        if not shown:
            raise NotFound(f"no commits found for commitset {cid}")
        for repo, c in shown:
            if req.wait and c.finished is None:
                c = self.store.wait_finished(c.id, lambda: not ctx.is_active())
            yield self.commit_info(repo, c)

    def _may_inspect(self, repo: RepoRow) -> bool:
        return self.perms.allowed("InspectCommitSet", repo.project, repo.name, repo.type)

    def ListCommitSet(self, req: pfs.ListCommitSetRequest, ctx):
        project = req.project.name if req.project and req.project.name else None
        sets: dict[str, list] = {}
        for c in self.store.all_commits():  # newest first
            repo = self.store.repo_of(c)
            if (project and repo.project != project) or not self._may_inspect(repo):
                continue
            sets.setdefault(c.cid, []).append((repo, c))
        for cid, members in sets.items():
            yield pfs.CommitSetInfo(
                commit_set=pfs.CommitSet(id=cid), commits=[self.commit_info(r, c) for r, c in reversed(members)]
            )

    def SquashCommitSet(self, req: pfs.SquashCommitSetRequest, ctx):
        self.store.squash_commit_set(self._commit_set(req.commit_set))
        return Empty()

    def DropCommitSet(self, req: pfs.DropCommitSetRequest, ctx):
        self.store.drop_commit_set(self._commit_set(req.commit_set))
        return Empty()

    # -- files --------------------------------------------------------------------------------
    def ModifyFile(self, requests, ctx):
        batch = None
        try:
            for kind, body in requests:  # parsed by wire.parse_modify_file
                if kind == "set_commit":
                    if batch is not None:
                        raise InvalidArgument("set_commit must come first and only once")
                    repo = self._commit_repo(body, "ModifyFile")
                    batch = self.store.begin_batch(repo, body.id, body.branch.name if body.branch else "")
                elif batch is None:
                    raise InvalidArgument("the first ModifyFile message must be set_commit")
                elif kind == "add_file":
                    path, data, url = body
                    if url:
                        raise InvalidArgument(
                            "add_file from a URL is not supported by the embedded server; send the bytes"
                        )
                    batch.add(path, data)
                elif kind == "delete_file":
                    batch.delete(body)
                elif kind == "copy_file":
                    _, src = self._commit(body.src.commit, "CopyFileSource")
                    batch.copy(src.id, body.src.path, body.dst, body.append)
                else:
                    raise InvalidArgument("empty ModifyFile message")
            if batch is not None:
                self.store.apply_batch(batch)
        except BaseException:
            if batch is not None:
                batch.discard()
            raise
        return Empty()

    def _file_target(self, file: Optional[pfs.File], call: str) -> tuple[pfs.Commit, CommitRow, str]:
        if file is None or file.commit is None:
            raise InvalidArgument("a file with its commit is needed")
        repo, c = self._commit(file.commit, call)
        return self.commit_msg(repo, c), c, P.clean(file.path or "/")

    def _single_file(self, c: CommitRow, path: str) -> Entry:
        if P.is_glob(path):
            matches = [e for e in self.store.glob(c.id, path) if not e.is_dir]
            if not matches:
                raise self.store.file_not_found(c.id, path)
            if len(matches) > 1:
                raise InvalidArgument("matched multiple files. Use GetFileTAR instead")
            return matches[0]
        e = self.store.inspect(c.id, path)
        if e.is_dir:
            raise InvalidArgument("cannot get directory or non-regular file. Use GetFileTAR instead")
        return e

    def GetFile(self, req: pfs.GetFileRequest, ctx):
        if req.url:
            raise InvalidArgument("GetFile to a URL is not supported by the embedded server")
        _, c, path = self._file_target(req.file, "GetFile")
        e = self._single_file(c, path)
        if req.offset < 0:
            raise InvalidArgument("offset must not be negative")
        for chunk in self.store.read(e, req.offset, GET_CHUNK):
            yield bytes_value(chunk)

    def GetFileTAR(self, req: pfs.GetFileRequest, ctx):
        _, c, path = self._file_target(req.file, "GetFileTAR")
        if P.is_glob(path):
            files = [e for e in self.store.glob(c.id, path) if not e.is_dir]
        else:
            files = list(self.store.files_under(c.id, path))
        if not files:
            raise self.store.file_not_found(c.id, path)
        mtime = int(c.finished or c.started)
        # Buffered into messages of up to about GET_CHUNK, as pachd's streaming bytes writer does:
        # three messages a file made a glob of 10,000 small files cost 30,000 messages.
        out = bytearray()
        for e in files:
            info = tarfile.TarInfo(e.path.lstrip("/"))
            info.size, info.mtime, info.mode = e.size, mtime, 0o644
            out += info.tobuf(format=tarfile.PAX_FORMAT)
            for chunk in self.store.read(e, 0, GET_CHUNK):
                out += chunk
                if len(out) >= GET_CHUNK:
                    yield bytes_value(bytes(out))
                    out.clear()
            if e.size % 512:
                out += b"\0" * (512 - e.size % 512)
        out += b"\0" * 1024
        yield bytes_value(bytes(out))

    def InspectFile(self, req: pfs.InspectFileRequest, ctx):
        commit, c, path = self._file_target(req.file, "InspectFile")
        return self.file_info(commit, c, self.store.inspect(c.id, path))

    @staticmethod
    def _page(rows: list, marker: Optional[pfs.File], number: int, reverse: bool) -> list:
        """pachd's pagination over (path, is_dir, size, hash) rows in path order."""
        if reverse:
            rows = rows[::-1]
        if marker is not None and marker.path:
            m = P.clean(marker.path)
            rows = [r for r in rows if (r[0].rstrip("/") < m if reverse else r[0].rstrip("/") > m)]
        return rows[:number] if number > 0 else rows

    @staticmethod
    def _encoder(commit: pfs.Commit, c: CommitRow) -> FileInfoEncoder:
        return FileInfoEncoder(commit, c.finished or c.started)

    def _paged_listing(self, call, req, rows):
        """ListFile and WalkFile: `rows(commit id, path)` paged and encoded."""
        commit, c, path = self._file_target(req.file, call)
        encode = self._encoder(commit, c).encode
        listing = rows(c.id, path)
        if req.reverse or req.number > 0 or (req.pagination_marker is not None and req.pagination_marker.path):
            listing = self._page(listing, req.pagination_marker, req.number, req.reverse)
        for p, is_dir, size, digest in listing:
            yield encode(p, is_dir, size, digest)

    def ListFile(self, req: pfs.ListFileRequest, ctx):
        def rows(cid, path):
            return [(e.path, e.is_dir, e.size, e.hash) for e in self.store.list_dir(cid, path)]

        return self._paged_listing("ListFile", req, rows)

    def WalkFile(self, req: pfs.WalkFileRequest, ctx):
        return self._paged_listing("WalkFile", req, self.store.walk_rows)

    def GlobFile(self, req: pfs.GlobFileRequest, ctx):
        repo, c = self._commit(req.commit, "GlobFile")
        enc = self._encoder(self.commit_msg(repo, c), c)
        lo = req.path_range.lower if req.path_range else ""
        hi = req.path_range.upper if req.path_range else ""
        for e in self.store.glob(c.id, req.pattern or "/*"):
            if (lo and e.path < lo) or (hi and e.path >= hi):
                continue
            yield enc.encode(e.path, e.is_dir, e.size, e.hash)

    def DiffFile(self, req: pfs.DiffFileRequest, ctx):
        old_given = req.old_file is not None and req.old_file.commit is not None and self._is_set(req.old_file.commit)
        if old_given:  # pachd checks the old file's repo first
            self.perms.need("DiffFile", *self._commit_names(req.old_file.commit))
        new_commit, new_c, path = self._file_target(req.new_file, "DiffFile")
        old_commit, old_c, old_path = None, None, path
        if old_given:
            old_repo, old_c = self._commit(req.old_file.commit)
            old_commit = self.commit_msg(old_repo, old_c)
            old_path = P.clean(req.old_file.path or "/")
        elif new_c.parent:
            old_c = self.store.get_commit(new_c.parent)
            old_commit = self.commit_msg(self.store.repo_of(old_c), old_c)
        new_enc = self._encoder(new_commit, new_c)
        old_enc = self._encoder(old_commit, old_c) if old_c else None
        for ch in self.store.diff(new_c.id, old_c.id if old_c else None, path, old_path):
            msg = b""
            if ch.new:
                msg += field_bytes(1, new_enc.encode(ch.new.path, ch.new.is_dir, ch.new.size, ch.new.hash))
            if ch.old:
                msg += field_bytes(2, old_enc.encode(ch.old.path, ch.old.is_dir, ch.old.size, ch.old.hash))
            yield msg

    # -- the few non-PFS calls tools make -----------------------------------------------------
    def InspectCluster(self, req, ctx):
        dep = self.store.deployment_id
        return admin.ClusterInfo(id=dep, deployment_id=dep, warnings_ok=True)

    def GetVersion(self, req, ctx):
        return VERSION
