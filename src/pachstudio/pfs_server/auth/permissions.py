"""What each call may do, as pachd 2.12 decides it: the gate its auth interceptor keeps for every
method (src/internal/middleware/auth/interceptor.go), and the permission each PFS and PPS call asks
of its auth server for the repo, project or pipeline it names. The translations (the services
of pfs/, pps/ and transaction/) only name the call and its resource; the auth engine (engine.py)
answers. With auth off, or for a call that needs no token, there is no caller and nothing is
checked.

Where pachd 2.12 checks nothing for a call that reads a repo's commits or data, or changes
anything, the call asks for what pachd asks of its sibling call (each such rule says so): a token
must not reach through one call what the other refuses it.
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional

from ..errors import PermissionDenied, Unknown
from .engine import Auth

UNAUTHENTICATED, AUTHENTICATED = None, "authenticated"


def _every(names: str, policy=AUTHENTICATED) -> dict:
    return dict.fromkeys(names.split(), policy)


# pachd's interceptor table for the services this server answers: None = no token needed,
# AUTHENTICATED = a valid token (when auth is on), a permission name = that permission on the
# cluster. A method missing here is refused, as pachd refuses one missing from its table.
GATE = {
    "admin_v2.API": {"InspectCluster": UNAUTHENTICATED, "RestartPachyderm": "CLUSTER_RESTART_PACHYDERM"},
    "versionpb_v2.API": {"GetVersion": UNAUTHENTICATED},
    "auth_v2.API": {
        **_every("Activate Authenticate Authorize WhoAmI GetOIDCLogin", UNAUTHENTICATED),
        **_every("GetRoleBinding ModifyRoleBinding RevokeAuthToken GetGroups GetPermissions GetRolesForPermission"),
        "GetGroupsForPrincipal": "CLUSTER_AUTH_GET_GROUPS",
        "GetPermissionsForPrincipal": "CLUSTER_AUTH_GET_PERMISSIONS_FOR_PRINCIPAL",
        "GetConfiguration": "CLUSTER_AUTH_GET_CONFIG",
        "SetConfiguration": "CLUSTER_AUTH_SET_CONFIG",
        "GetRobotToken": "CLUSTER_AUTH_GET_ROBOT_TOKEN",
        "SetGroupsForUser": "CLUSTER_AUTH_MODIFY_GROUP_MEMBERS",
        "ModifyMembers": "CLUSTER_AUTH_MODIFY_GROUP_MEMBERS",
        "GetUsers": "CLUSTER_AUTH_GET_GROUP_USERS",
        "ExtractAuthTokens": "CLUSTER_AUTH_EXTRACT_TOKENS",
        "RestoreAuthToken": "CLUSTER_AUTH_RESTORE_TOKEN",
        "Deactivate": "CLUSTER_AUTH_DEACTIVATE",
        "DeleteExpiredAuthTokens": "CLUSTER_AUTH_DELETE_EXPIRED_TOKENS",
        "RevokeAuthTokensForUser": "CLUSTER_AUTH_REVOKE_USER_TOKENS",
        "RotateRootToken": "CLUSTER_AUTH_ROTATE_ROOT_TOKEN",
    },
    "pfs_v2.API": {
        **_every(
            "CreateRepo InspectRepo ListRepo DeleteRepo DeleteRepos StartCommit FinishCommit ForgetCommit "
            "InspectCommit ListCommit SubscribeCommit ClearCommit InspectCommitSet ListCommitSet FindCommits "
            "WalkCommitProvenance WalkCommitSubvenance CreateBranch InspectBranch ListBranch DeleteBranch "
            "WalkBranchProvenance WalkBranchSubvenance InspectProject InspectProjectV2 ListProject DeleteProject "
            "ModifyFile GetFile InspectFile ListFile WalkFile GlobFile DiffFile DeleteAll Fsck CreateFileSet "
            "GetFileSet AddFileSet RenewFileSet ComposeFileSet ShardFileSet CheckStorage PutCache GetCache "
            "ClearCache ListTask Egress ReposSummary"
        ),
        # pachd lets GetFileTAR past its gate and asks who the caller is when it opens the commit:
        # without a token that is the same refusal, so the gate asks for the token here
        "GetFileTAR": AUTHENTICATED,
        "ActivateAuth": "CLUSTER_AUTH_ACTIVATE",
        **_every("SquashCommit DropCommit SquashCommitSet DropCommitSet", "REPO_DELETE_COMMIT"),
        "CreateProject": "PROJECT_CREATE",
    },
    "pps_v2.API": {
        **_every(
            "InspectJob ListJob SubscribeJob DeleteJob StopJob InspectJobSet ListJobSet InspectDatum ListDatum "
            "CreateDatum RestartDatum CreatePipeline CreatePipelineV2 RerunPipeline InspectPipeline DeletePipeline "
            "DeletePipelines StartPipeline StopPipeline RunPipeline CheckStatus RunCron GetLogs UpdateJobState "
            "ListPipeline RunLoadTest RunLoadTestDefault RenderTemplate ListTask GetKubeEvents QueryLoki "
            "GetClusterDefaults GetProjectDefaults SetProjectDefaults PipelinesSummary"
        ),
        "ActivateAuth": "CLUSTER_AUTH_ACTIVATE",
        "DeleteAll": "CLUSTER_DELETE_ALL",
        "CreateSecret": "CLUSTER_CREATE_SECRET",
        "ListSecret": "CLUSTER_LIST_SECRETS",
        "DeleteSecret": "SECRET_DELETE",
        "InspectSecret": "SECRET_INSPECT",
        "SetClusterDefaults": "CLUSTER_SET_DEFAULTS",
    },
    "transaction_v2.API": {
        **_every(
            "BatchTransaction StartTransaction InspectTransaction DeleteTransaction ListTransaction FinishTransaction"
        ),
        "DeleteAll": "CLUSTER_DELETE_ALL",
    },
}


def no_gate(service: str, name: str) -> Unknown:
    """pachd's answer for a method its table does not list (it fails closed)."""
    return Unknown(f'no auth function for "/{service}/{name}", this is a bug')


# --- the caller of the call this thread serves (set by the gate) -------------------------------------
_local = threading.local()


def caller() -> Optional[str]:
    """The subject of the call this thread serves; None when auth is off or the call needs none."""
    return getattr(_local, "subject", None)


def set_caller(subject: Optional[str]) -> None:
    _local.subject = subject


# --- what each call asks of the auth engine -----------------------------------------------------------
# call -> (resource type, [(permissions, prefix of pachd's refusal)]): each group is checked in turn
# on the repo (for PPS calls: the pipeline's output repo), project or cluster the call names. The
# prefix is what pachd wraps its ErrNotAuthorized in ({project}, {repo}, {pipeline} filled in).
# pachd references are to src/server/pfs/server/ unless they name pps (src/server/pps/server/).
RULES = {
    # -- PFS repos and projects
    "CreateRepo": ("PROJECT", [(("PROJECT_CREATE_REPO",), "failed to create repo: ")]),  # server_repo.go:43
    "UpdateRepo": ("REPO", [(("REPO_WRITE",), 'could not update description of "{repo}": ')]),  # server_repo.go:105
    "DeleteRepo": ("REPO", [(("REPO_DELETE",), "")]),  # server_repo.go:226 (refused = not deleted, no error)
    "DeleteProject": (  # server_project.go:155
        "PROJECT",
        [(("PROJECT_DELETE", "PROJECT_MODIFY_BINDINGS"), 'user is not authorized to delete project "{project}": ')],
    ),
    "DeleteAll": (  # server_project.go:180: every project deleted in one transaction
        "PROJECT",
        [
            (
                ("PROJECT_DELETE", "PROJECT_MODIFY_BINDINGS"),
                'list projects in transaction: for each project: delete project "{project}": '
                'user is not authorized to delete project "{project}": ',
            )
        ],
    ),
    "ListRepoOfProject": ("PROJECT", [(("PROJECT_LIST_REPO",), "")]),  # server_repo.go:333
    "ListRepoOfRepo": ("REPO", [(("REPO_READ",), "")]),  # server_project.go:33
    # -- branches and commits
    "CreateBranch": ("REPO", [(("REPO_CREATE_BRANCH",), "")]),  # server_branch.go:232
    "ListBranch": ("REPO", [(("REPO_LIST_BRANCH",), "")]),  # server_branch.go:488
    "DeleteBranch": ("REPO", [(("REPO_DELETE_BRANCH",), "")]),  # server_branch.go:526
    "StartCommit": ("REPO", [(("REPO_WRITE",), "")]),  # server_commit.go:176
    "FinishCommit": ("REPO", [(("REPO_WRITE",), "")]),  # val_server.go:49
    "InspectCommit": ("REPO", [(("REPO_INSPECT_COMMIT",), "")]),  # server_commit.go:451
    "ListCommit": ("REPO", [(("REPO_LIST_COMMIT",), "")]),  # server_commit.go:575
    # pachd checks nothing more than a token for these two; here they ask what ListCommit and
    # InspectCommit ask, since they answer the same commits
    "SubscribeCommit": ("REPO", [(("REPO_LIST_COMMIT",), "")]),
    "InspectCommitSet": ("REPO", [(("REPO_INSPECT_COMMIT",), "")]),
    # -- files
    # ModifyFile: pachd asks REPO_WRITE when the write starts a commit (server_commit.go:176) and
    # nothing when it goes into an open one; here every write asks it
    "ModifyFile": ("REPO", [(("REPO_WRITE",), "")]),
    "CopyFileSource": ("REPO", [(("REPO_READ",), "")]),  # server_file.go:228 opens the source commit
    "GetFile": ("REPO", [(("REPO_READ",), "")]),  # server_commit.go:917
    "GetFileTAR": ("REPO", [(("REPO_READ",), "")]),  # server_commit.go:917
    "InspectFile": ("REPO", [(("REPO_INSPECT_FILE",), ""), (("REPO_READ",), "")]),  # val_server.go:60
    "ListFile": ("REPO", [(("REPO_LIST_FILE",), ""), (("REPO_READ",), "")]),  # val_server.go:71
    "WalkFile": ("REPO", [(("REPO_READ", "REPO_LIST_FILE"), ""), (("REPO_READ",), "")]),  # val_server.go:92
    "GlobFile": ("REPO", [(("REPO_READ", "REPO_LIST_FILE"), ""), (("REPO_READ",), "")]),  # val_server.go:105
    "DiffFile": ("REPO", [(("REPO_READ",), "")]),  # server_file.go:535 (old), :540 (new)
    # -- PPS, on the pipeline's output repo
    "CreatePipelineOutput": (  # pps api_server.go:2563 creates the output repo: server_repo.go:43
        "PROJECT",
        [(("PROJECT_CREATE_REPO",), "error creating output repo for {name}: failed to create repo: ")],
    ),
    "UpdatePipeline": ("REPO", [(("REPO_WRITE",), "")]),  # pps api_server.go:404
    "StartPipeline": ("REPO", [(("REPO_WRITE",), "")]),  # pps api_server.go:3278
    "StopPipeline": ("REPO", [(("REPO_WRITE",), "")]),  # pps api_server.go:3325
    "DeletePipeline": (  # StopPipeline first (pps api_server.go:3067), then pps api_server.go:413
        "REPO",
        [(("REPO_WRITE",), "error stopping pipeline {pipeline}: "), (("REPO_DELETE",), "")],
    ),
    "DeletePipelines": (  # pps api_server.go:3243 stops each, then deletes each
        "REPO",
        [(("REPO_WRITE",), 'stop pipeline "{pipeline}": '), (("REPO_DELETE",), "")],
    ),
    "GetLogs": ("REPO", [(("REPO_READ",), "")]),  # pps api_server.go:402 (inputs first: pipeline())
    "InspectJob": ("REPO", [(("PIPELINE_LIST_JOB",), "")]),  # pps api_server.go:701 (details: always sent here)
    "ListJob": ("REPO", [(("PIPELINE_LIST_JOB",), "")]),  # pps api_server.go:783
    "SubscribeJob": ("REPO", [(("PIPELINE_LIST_JOB",), "")]),  # pps api_server.go:882
    "StopJob": ("REPO", [(("REPO_WRITE",), "")]),  # pps api_server.go:985 finishes its commit: val_server.go:49
    "DeleteJob": ("REPO", [(("REPO_WRITE",), "")]),  # pps api_server.go:927 stops it first
    # pachd checks nothing more than a token for RestartDatum (pps api_server.go:1011); it
    # cancels a running datum, so it asks what StopJob asks
    "RestartDatum": ("REPO", [(("REPO_WRITE",), "")]),
    # a job's datums are read from its meta commit (pps api_server.go:1234): server_commit.go:917
    "InspectDatum": ("REPO", [(("REPO_READ",), "")]),
    "ListDatum": ("REPO", [(("REPO_READ",), "")]),
    # datums of an input spec: each input's head is inspected (pps api_server.go:1170 and :1304,
    # server_commit.go:451), then its files are globbed (val_server.go:105)
    "DatumInputHead": ("REPO", [(("REPO_INSPECT_COMMIT",), "")]),
    "DatumInputFiles": ("REPO", [(("REPO_READ", "REPO_LIST_FILE"), "")]),
    # a pipeline reads its inputs on its creator's behalf: pps api_server.go:387
    "PipelineInput": ("REPO", [(("REPO_READ",), "")]),
    "PachdLogs": ("CLUSTER", [(("CLUSTER_GET_PACHD_LOGS",), "")]),  # pps api_server.go:1449
}


def repo_string(project: str, repo: str, type_: str = "user") -> str:
    """pachd's Repo.String()."""
    return f"{project}/{repo}" + ("" if type_ in ("", "user") else f".{type_}")


class Permissions:
    """The checks of the calls this thread serves, asked of the auth engine for its caller."""

    def __init__(self, auth: Optional[Auth]):
        self.auth = auth

    @property
    def subject(self) -> Optional[str]:
        return caller() if self.auth is not None else None

    def need(self, call: str, project: str = "default", repo: str = "", type_: str = "user") -> None:
        """pachd's refusal (PERMISSION_DENIED, in its words) unless the caller may make `call` on
        the repo (or project) it names; a repo or project with no role binding (one that does not
        exist) is pachd's UNKNOWN "no role binding exists for ...", as pachd answers it."""
        subject = self.subject
        if subject is None:
            return
        rtype, checks = RULES[call]
        name = {"CLUSTER": "", "PROJECT": project}.get(rtype, f"{project}/{repo}")
        if rtype == "REPO" and type_ == "spec":
            rtype = "SPEC_REPO"
        words = {
            "project": project,
            "repo": repo_string(project, repo, type_),
            "pipeline": f"{project}/{repo}",
            "name": repo,
        }
        for permissions, prefix in checks:
            try:
                self.auth.check(subject, rtype, name, *permissions)
            except PermissionDenied as e:
                if not prefix:
                    raise
                raise PermissionDenied(prefix.format(**words) + str(e)) from None

    def allowed(self, call: str, project: str = "default", repo: str = "", type_: str = "user") -> bool:
        try:
            self.need(call, project, repo, type_)
            return True
        except PermissionDenied:
            return False

    def may_see(self, project: str, repo: str, type_: str = "user") -> bool:
        """Whether a listing shows the caller this repo (or the pipeline writing it): the
        project's PROJECT_LIST_REPO, else the repo's REPO_READ (server_project.go:23, the rule of
        ListRepo and, on a pipeline's output repo, of ListPipeline: pps api_server.go:2968)."""
        return self.allowed("ListRepoOfProject", project) or self.allowed("ListRepoOfRepo", project, repo, type_)

    def pipeline(self, call: str, inputs: Iterable[tuple[str, str]], project: str, name: str) -> None:
        """pachd's authorizePipelineOp (pps api_server.go:357): REPO_READ on every input repo,
        then what `call` needs on the output repo. pachd skips an input whose repo name it has
        checked in another project; here each (project, repo) is checked."""
        for p, r in dict.fromkeys(inputs):
            self.need("PipelineInput", p, r)
        if call:
            self.need(call, project, name)

    def datum_inputs(self, inputs: Iterable[tuple[str, str]]) -> None:
        """ListDatum and CreateDatum over an input spec read each input's head, then its files."""
        inputs = list(dict.fromkeys(inputs))
        for call in ("DatumInputHead", "DatumInputFiles"):
            for p, r in inputs:
                self.need(call, p, r)
