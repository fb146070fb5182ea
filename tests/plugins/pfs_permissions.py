"""pachd's permission checks call by call, as a catalogue the tests run against the embedded server.

Each `Call` is one call of the PFS, PPS, transaction or admin API a token can make: what it sets up
first (as pach:root), the repos it concerns (the robot's role is bound on those), the least of the
roles none < repoReader < repoWriter < repoOwner < clusterAdmin that may make it (read from pachd
2.12's code, `pachd` says where), and what pachd answers a role below that: PERMISSION_DENIED in
pachd's words, or an answer that leaves out what the caller may not see. `state(root, case)` is
what a refused call must leave as it was.
"""
import json
import uuid
from collections import namedtuple
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Optional

import grpc
from pachyderm_sdk import Client
from pachyderm_sdk.api import auth, pfs, pps, transaction

ROLES = ("none", "repoReader", "repoWriter", "repoOwner", "clusterAdmin")
RANK = {role: i for i, role in enumerate(ROLES)}
LAB = "lab"  # a project where robots hold no project role (everyone may write the default project)


def robot_of(role: str) -> str:
    return f"robot:{role}"


def denied(role: str, permissions: str, rtype: str, name: str, prefix: str = "") -> str:
    """pachd's ErrNotAuthorized (src/auth/auth.go), wrapped in `prefix` as pachd wraps it."""
    return (f"{prefix}{robot_of(role)} is not authorized to perform this operation - needs permissions "
            f"[{permissions}] on {rtype} {name}. Run `pachctl auth roles-for-permission` to find roles that grant "
            "a given permission.")


@dataclass
class Refused:
    """What pachd answers below the role a call needs: `code` and `text` of its error, or
    (code None) an answer in which `hidden(result, case)` holds: what the caller may not see
    is left out, what it may not do is not done."""
    code: Optional[grpc.StatusCode]
    text: str = ""
    hidden: Optional[Callable] = None


class Case:
    """One (call, role): the resources its setup made, the repos the role is bound on."""

    def __init__(self, role: str, world: dict):
        self.role, self.world = role, world
        self.n = uuid.uuid4().hex[:6]
        self.concerned: list[tuple[str, str]] = []  # (project, repo): the role is bound on these
        self.touched: list[tuple[str, str]] = []  # every repo whose state the call must leave alone
        self.pipelines: list[tuple[str, str]] = []
        self.data: dict = {}

    def repo(self, project="default", name="", concerned=True, files=None, branch=True, root=None) -> str:
        name = name or f"r{self.n}"
        if root is not None:
            root.pfs.create_repo(repo=repo_msg(project, name))
            if files:
                put(root, project, name, files)
            elif branch:
                root.pfs.create_branch(branch=pfs.Branch(repo=repo_msg(project, name), name="master"))
        (self.concerned if concerned else []).append((project, name))
        self.touched.append((project, name))
        return name


@dataclass
class Call:
    name: str
    need: str
    pachd: str
    run: Callable  # (client, case) -> result
    setup: Callable = lambda root, case: None
    refused: Callable = None  # (case) -> Refused
    allowed: Callable = None  # (result, root, case) -> None: what an allowed call did
    destructive: bool = False  # allowed, it changes the whole server: tried on a server of its own
    tags: tuple = field(default_factory=tuple)


def repo_msg(project: str, name: str, type_: str = "user") -> pfs.Repo:
    return pfs.Repo(name=name, type=type_, project=pfs.Project(name=project))


def pipe_msg(project: str, name: str) -> pps.Pipeline:
    return pps.Pipeline(name=name, project=pfs.Project(name=project))


def branch(project, repo, name="master") -> pfs.Branch:
    return pfs.Branch(repo=repo_msg(project, repo), name=name)


def head(project, repo, name="master") -> pfs.Commit:
    return pfs.Commit(branch=branch(project, repo, name), repo=repo_msg(project, repo))


def file_at(project, repo, path, ref="master") -> pfs.File:
    return pfs.File(commit=head(project, repo, ref), path=path)


def put(client: Client, project: str, repo: str, files: dict) -> str:
    with client.pfs.commit(branch=branch(project, repo)) as c:
        for path, data in files.items():
            c.put_file_from_bytes(path=path, data=data)
    return c.id


def make_pipeline(root: Client, project: str, name: str, inputs: list, cmd=("sh", "-c", "true")) -> None:
    """A pipeline over `inputs` [(project, repo)], as pachctl's spec; its first job runs at once."""
    cross = [{"pfs": {"project": p, "repo": r, "glob": "/*"}} for p, r in inputs]
    spec = {"pipeline": {"name": name, "project": {"name": project}},
            "transform": {"image": "alpine", "cmd": list(cmd)},
            "input": cross[0] if len(cross) == 1 else {"cross": cross}}
    root.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec))


def wait_jobs(root: Client, project: str, name: str) -> list:
    jobs = list(root.pps.list_job(pipeline=pipe_msg(project, name)))
    return [root.pps.inspect_job(job=j.job, wait=True) for j in jobs]


def drain(result):
    """A streaming answer read to its end (errors come while reading)."""
    return list(result) if hasattr(result, "__next__") else result


class _Token(grpc.UnaryStreamClientInterceptor):
    """Sends `authn-token` with a call, as the SDK's client does."""

    class Details(namedtuple("Details", "method timeout metadata credentials wait_for_ready compression"),
                  grpc.ClientCallDetails):
        pass

    def __init__(self, token: str):
        self.token = token

    def intercept_unary_stream(self, continuation, details, request):
        metadata = [*(details.metadata or ()), ("authn-token", self.token)]
        return continuation(self.Details(details.method, details.timeout, metadata, details.credentials,
                                         details.wait_for_ready, details.compression), request)


def first(client: Client, open_stream):
    """The first message of an endless stream (SubscribeCommit, SubscribeJob), made with the SDK's
    generated stubs over a channel of the client's address and token that is closed right after:
    the SDK's own client cannot cancel a stream, and a stream never cancelled keeps a server
    worker waiting for ever. `open_stream(stubs)` opens it with `stubs.pfs` or `stubs.pps`."""
    channel = grpc.intercept_channel(grpc.insecure_channel(client.address), _Token(client.auth_token))
    try:
        return next(open_stream(SimpleNamespace(pfs=pfs.ApiStub(channel), pps=pps.ApiStub(channel))))
    finally:
        channel.close()


# --- what a refused call must leave as it was ---------------------------------------------------------
def state(root: Client, case: Case) -> dict:
    """Everything a user sees of the server that the call could have changed: projects, repos,
    pipelines, transactions; the touched repos' branches, commits, files and role bindings; the
    case's pipelines' jobs."""
    out = {
        "projects": sorted(p.project.name for p in root.pfs.list_project()),
        "repos": sorted(f"{r.repo.project.name}/{r.repo.name}.{r.repo.type}" for r in root.pfs.list_repo(type="")),
        "pipelines": sorted((p.pipeline.project.name, p.pipeline.name, p.version, p.stopped)
                            for p in root.pps.list_pipeline()),
        "transactions": sorted((t.transaction.id, len(t.requests))
                               for t in root.transaction.list_transaction().transaction_info),
    }
    for project, repo in case.touched:
        r = repo_msg(project, repo)
        if f"{project}/{repo}.user" not in out["repos"]:
            out[f"{project}/{repo}"] = None
            continue
        branches = sorted((b.branch.name, b.head.id) for b in root.pfs.list_branch(repo=r))
        commits = sorted((c.commit.id, c.to_dict().get("finished") is not None, c.description)
                         for c in root.pfs.list_commit(repo=r))
        files = {name: sorted((f.file.path, f.hash.hex())
                              for f in root.pfs.walk_file(file=file_at(project, repo, "/", name)))
                 for name, _ in branches}
        binding = root.auth.get_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO,
                                                                      name=f"{project}/{repo}")).binding
        roles = {k: sorted(v.roles) for k, v in binding.entries.items()}
        out[f"{project}/{repo}"] = {"branches": branches, "commits": commits, "files": files, "roles": roles}
    for project, name in case.pipelines:
        out[f"jobs of {project}/{name}"] = sorted((j.job.id, j.state) for j in root.pps.list_job(
            pipeline=pipe_msg(project, name)))
    return out


# --- setups ---------------------------------------------------------------------------------------------
def with_file(root, case):
    case.data["repo"] = case.repo(root=root, files={"/a.txt": b"alpha"})
    case.data["commit"] = root.pfs.inspect_commit(commit=head("default", case.data["repo"])).commit.id


def with_two_commits(root, case):
    with_file(root, case)
    case.data["first"] = case.data["commit"]
    case.data["commit"] = put(root, "default", case.data["repo"], {"/b.txt": b"beta"})


def with_open_commit(root, case):
    with_file(root, case)
    case.data["open"] = root.pfs.start_commit(branch=branch("default", case.data["repo"])).id


def with_branch(root, case):
    with_file(root, case)
    root.pfs.create_branch(branch=branch("default", case.data["repo"], "dev"),
                           head=pfs.Commit(repo=repo_msg("default", case.data["repo"]), id=case.data["commit"]))


def with_lab_repo(root, case):
    case.data["repo"] = case.repo(LAB, root=root, files={"/a.txt": b"alpha"})


def with_project_of_two(root, case):
    case.data["project"] = f"dr{case.n}"
    root.pfs.create_project(project=pfs.Project(name=case.data["project"]))
    case.data["mine"] = case.repo(case.data["project"], f"mine{case.n}", root=root)
    case.data["other"] = case.repo(case.data["project"], f"other{case.n}", concerned=False, root=root)


def with_project(root, case):
    case.data["project"] = f"p{case.n}"
    root.pfs.create_project(project=pfs.Project(name=case.data["project"]))


def with_input(root, case):
    case.data["in"] = case.repo(name=f"in{case.n}", root=root)


def with_pipeline(root, case, project="default"):
    """An input repo (empty) and a pipeline over it whose first job has finished; the role is
    bound on the pipeline's output repo."""
    inp = case.data["in"] = case.repo(name=f"in{case.n}", concerned=False, root=root)
    case.data["project"], case.data["pipeline"] = project, f"pl{case.n}"
    make_pipeline(root, project, case.data["pipeline"], [("default", inp)])
    case.concerned.append((project, case.data["pipeline"]))
    case.touched.append((project, case.data["pipeline"]))
    case.pipelines.append((project, case.data["pipeline"]))
    case.data["job"] = wait_jobs(root, project, case.data["pipeline"])[0].job


def with_pipeline_and_input(root, case):
    with_pipeline(root, case)
    case.concerned.insert(0, ("default", f"in{case.n}"))


def with_stopped_pipeline(root, case):
    with_pipeline(root, case)
    root.pps.stop_pipeline(pipeline=pipe_msg("default", case.data["pipeline"]))


def with_pipeline_in_own_project(root, case):
    project = f"dp{case.n}"
    root.pfs.create_project(project=pfs.Project(name=project))
    with_pipeline(root, case, project)


def with_empty_transaction(root, case):
    """pach:root's transaction, nothing in it yet."""
    with_file(root, case)
    case.data["txn"] = _started(root)


def with_transaction(root, case):
    """pach:root's transaction holding a CreateBranch on the case's repo."""
    with_empty_transaction(root, case)
    txn = case.data["txn"]
    in_txn = Client.from_pachd_address(case.world["address"], auth_token=case.world["root_token"],
                                       transaction_id=txn.id)
    in_txn.pfs.create_branch(branch=branch("default", case.data["repo"], "dev"),
                             head=pfs.Commit(repo=repo_msg("default", case.data["repo"]), id=case.data["commit"]))
    in_txn._channel.close()


def on_world(*repos):
    """Read calls on the shared world (a pipeline with a finished job): the role is bound on `repos`."""
    def setup(root, case):
        for key in repos:
            case.concerned.append(case.world[key])
            case.touched.append(case.world[key])
        case.pipelines.append(case.world["out"])
    return setup


def build_world(root: Client, address: str, root_token: str) -> dict:
    """What the read-only PPS calls look at, made once: project `lab`, an input repo with two files,
    a pipeline over it in the default project and one in `lab`, each with its finished job."""
    root.pfs.create_project(project=pfs.Project(name=LAB))
    root.pfs.create_repo(repo=repo_msg("default", "w-in"))
    put(root, "default", "w-in", {"/a.txt": b"alpha", "/b.txt": b"beta"})
    make_pipeline(root, "default", "w-out", [("default", "w-in")],
                  ("sh", "-c", "echo hello; cp -r /pfs/w-in/* /pfs/out/"))
    make_pipeline(root, LAB, "w-lab", [("default", "w-in")])
    job = wait_jobs(root, "default", "w-out")[0]
    wait_jobs(root, LAB, "w-lab")
    datum = next(iter(root.pps.list_datum(job=job.job)))
    return {"in": ("default", "w-in"), "out": ("default", "w-out"), "lab_out": (LAB, "w-lab"), "job": job.job,
            "datum": datum.datum, "address": address, "root_token": root_token}


def inventory(root: Client) -> dict:
    """The pipelines, repos and projects there are."""
    return {"pipelines": {(p.pipeline.project.name, p.pipeline.name) for p in root.pps.list_pipeline()},
            "repos": {(r.repo.project.name, r.repo.name) for r in root.pfs.list_repo()},
            "projects": {p.project.name for p in root.pfs.list_project()}}


def reset(root: Client, kept: dict) -> None:
    """Deletes every pipeline, repo, project and transaction made since `kept = inventory(root)`,
    so each case starts on the same small server."""
    now = inventory(root)
    for project, name in now["pipelines"] - kept["pipelines"]:
        root.pps.delete_pipeline(pipeline=pipe_msg(project, name), force=True)
    for project, name in now["repos"] - kept["repos"]:
        root.pfs.delete_repo(repo=repo_msg(project, name), force=True)
    for project in now["projects"] - kept["projects"]:
        root.pfs.delete_project(project=pfs.Project(name=project), force=True)
    root.transaction.delete_all()


def robots(root: Client, address: str) -> dict:
    """{role: client} of one robot per role; clusterAdmin's role is bound on the cluster."""
    clients = {}
    for role in ROLES:
        token = root.auth.get_robot_token(robot=robot_of(role)).token
        clients[role] = Client.from_pachd_address(address, auth_token=token)
    root.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.CLUSTER),
                                  principal=robot_of("clusterAdmin"), roles=["clusterAdmin"])
    return clients


def bind(root: Client, case: Case, roles: list) -> None:
    if case.role in ("none", "clusterAdmin"):
        return
    for project, repo in case.concerned:
        try:
            root.auth.modify_role_binding(resource=auth.Resource(type=auth.ResourceType.REPO, name=f"{project}/{repo}"),
                                          principal=robot_of(case.role), roles=roles)
        except grpc.RpcError:
            if roles:
                raise  # unbinding a repo the call deleted is nothing to do


# --- refusals -----------------------------------------------------------------------------------------
def on_repo(permissions, key="repo", project="default", prefix=""):
    return lambda case: Refused(grpc.StatusCode.PERMISSION_DENIED, denied(
        case.role, permissions, "REPO", f"{project}/{case.data[key]}", prefix))


def on_world_repo(permissions, key="out"):
    return lambda case: Refused(grpc.StatusCode.PERMISSION_DENIED, denied(
        case.role, permissions, "REPO", "/".join(case.world[key])))


def on_cluster(permission):
    return lambda case: Refused(grpc.StatusCode.PERMISSION_DENIED, denied(case.role, permission, "CLUSTER", ""))


def pipeline_repo(permissions, prefix=""):
    def refused(case):
        name = f"{case.data['project']}/{case.data['pipeline']}"
        return Refused(grpc.StatusCode.PERMISSION_DENIED, denied(case.role, permissions, "REPO", name,
                                                                 prefix.format(pipeline=name)))
    return refused


def by_role(**refusals):
    """A refusal that depends on the role: {role: refused(case)}."""
    return lambda case: refusals[case.role](case)


def hidden(check):
    return lambda case: Refused(None, hidden=check)


# --- the calls ----------------------------------------------------------------------------------------
def _repos(client, project):
    return {r.repo.name for r in client.pfs.list_repo(projects=[pfs.Project(name=project)])}


def _new_pipeline_spec(case, project="default", update_of=None):
    name = update_of or f"np{case.n}"
    return json.dumps({"pipeline": {"name": name, "project": {"name": project}},
                       "transform": {"image": "alpine", "cmd": ["sh", "-c", "true" if not update_of else "exit 0"]},
                       "input": {"pfs": {"project": "default", "repo": case.data["in"], "glob": "/*"}}})


def _create_in(project):
    def run(c, case):
        c.pps.create_pipeline_v2(create_pipeline_request_json=_new_pipeline_spec(case, project))
        case.pipelines.append((project, f"np{case.n}"))
    return run


def _update(c, case):
    c.pps.create_pipeline_v2(create_pipeline_request_json=_new_pipeline_spec(case, update_of=case.data["pipeline"]),
                             update=True)


def _job(case):
    return pps.Job(pipeline=pipe_msg(case.data["project"], case.data["pipeline"]), id=case.data["job"].id)


def _world_pipe(case, key="out"):
    return pipe_msg(*case.world[key])


def _modify(c, case, commit):
    c.pfs.modify_file(iter([pfs.ModifyFileRequest(set_commit=commit),
                            pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/new.txt", raw=b"new"))]))


def _started(c: Client) -> transaction.Transaction:
    """StartTransaction, without the SDK making it the client's active transaction."""
    try:
        return c.transaction.start_transaction()
    finally:
        c.transaction_id = None


def _in_transaction(c, case) -> Client:
    """The caller's client with pach:root's transaction as its active one."""
    return Client.from_pachd_address(case.world["address"], auth_token=c.auth_token,
                                     transaction_id=case.data["txn"].id)


def _raises_unknown(call, text):
    """A call pachd answers with an error that is no refusal: the answer is returned as a string."""
    def run(c, case):
        try:
            drain(call(c, case))
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNKNOWN and text in e.details():
                return e.details()
            raise
        raise AssertionError(f"expected pachd's answer {text!r}")
    return run


CREATE_REPO_TEXT = "failed to create repo: "
STOP_PIPELINE = "error stopping pipeline {pipeline}: "
DELETE_ALL_PFS = ('list projects in transaction: for each project: delete project "default": '
                  'user is not authorized to delete project "default": ')
IN_TXN = "error running request 1 of 1: "

CALLS = [
    # ---- PFS: projects and repos
    Call("pfs.CreateProject", "none",
         "middleware/auth/interceptor.go:164 (PROJECT_CREATE: all users are projectCreator)",
         lambda c, case: c.pfs.create_project(project=pfs.Project(name=f"np{case.n}"))),
    Call("pfs.InspectProject", "none", "middleware/auth/interceptor.go:165 (a token)",
         lambda c, case: c.pfs.inspect_project(project=pfs.Project(name=LAB))),
    Call("pfs.ListProject", "none", "middleware/auth/interceptor.go:167 (a token)",
         lambda c, case: drain(c.pfs.list_project())),
    Call("pfs.DeleteProject", "clusterAdmin", "pfs/server/server_project.go:155", setup=with_project,
         run=lambda c, case: c.pfs.delete_project(project=pfs.Project(name=case.data["project"])),
         refused=lambda case: Refused(grpc.StatusCode.PERMISSION_DENIED, denied(
             case.role, "PROJECT_DELETE PROJECT_MODIFY_BINDINGS", "PROJECT", case.data["project"],
             f'user is not authorized to delete project "{case.data["project"]}": '))),
    Call("pfs.CreateRepo in the default project", "none",
         "pfs/server/server_repo.go:43 (allClusterUsers are the default project's projectWriter)",
         lambda c, case: c.pfs.create_repo(repo=repo_msg("default", f"new{case.n}"))),
    Call(f"pfs.CreateRepo in project {LAB}", "clusterAdmin", "pfs/server/server_repo.go:43",
         lambda c, case: c.pfs.create_repo(repo=repo_msg(LAB, f"new{case.n}")),
         refused=lambda case: Refused(grpc.StatusCode.PERMISSION_DENIED, denied(
             case.role, "PROJECT_CREATE_REPO", "PROJECT", LAB, CREATE_REPO_TEXT))),
    Call("pfs.CreateRepo update=true (a new description)", "repoWriter", "pfs/server/server_repo.go:105",
         lambda c, case: c.pfs.create_repo(repo=repo_msg("default", case.data["repo"]), description="changed",
                                           update=True),
         setup=with_file,
         refused=lambda case: Refused(grpc.StatusCode.PERMISSION_DENIED, denied(
             case.role, "REPO_WRITE", "REPO", f"default/{case.data['repo']}",
             f'could not update description of "default/{case.data["repo"]}": '))),
    Call("pfs.InspectRepo", "none", "pfs/server/server_repo.go:288 (a token; auth_info says the caller's roles)",
         lambda c, case: c.pfs.inspect_repo(repo=repo_msg("default", case.data["repo"])), setup=with_file),
    Call(f"pfs.ListRepo of project {LAB}", "repoReader", "pfs/server/server_project.go:23, server_repo.go:333",
         lambda c, case: _repos(c, LAB), setup=with_lab_repo,
         refused=hidden(lambda result, case: case.data["repo"] not in result),
         allowed=lambda result, root, case: result >= {case.data["repo"]}),
    Call("pfs.DeleteRepo", "repoOwner", "pfs/server/server_repo.go:226 (refused: deleted=false, no error)",
         lambda c, case: c.pfs.delete_repo(repo=repo_msg("default", case.data["repo"])), setup=with_file,
         refused=hidden(lambda result, case: result.deleted is False),
         allowed=lambda result, root, case: result.deleted and case.data["repo"] not in _repos(root, "default")),
    Call("pfs.DeleteRepos of a project", "repoOwner",
         "pfs/server/server_repo.go:140,226 (canDeleteRepo: the others are skipped)",
         lambda c, case: c.pfs.delete_repos(projects=[pfs.Project(name=case.data["project"])]),
         setup=with_project_of_two,
         refused=hidden(lambda result, case: result.repos == []),
         allowed=lambda result, root, case: sorted(r.name for r in result.repos) == sorted(
             [case.data["mine"]] + ([case.data["other"]] if case.role == "clusterAdmin" else []))),
    Call("pfs.DeleteAll", "clusterAdmin", "pfs/server/server_project.go:180,155", lambda c, case: c.pfs.delete_all(),
         setup=with_file, destructive=True,
         refused=lambda case: Refused(grpc.StatusCode.PERMISSION_DENIED, denied(
             case.role, "PROJECT_DELETE PROJECT_MODIFY_BINDINGS", "PROJECT", "default", DELETE_ALL_PFS))),
    # ---- PFS: branches and commits
    Call("pfs.CreateBranch", "repoWriter", "pfs/server/server_branch.go:232",
         lambda c, case: c.pfs.create_branch(branch=branch("default", case.data["repo"], "dev"),
                                             head=head("default", case.data["repo"])),
         setup=with_file, refused=on_repo("REPO_CREATE_BRANCH")),
    Call("pfs.InspectBranch", "none", "pfs/server/server_branch.go:417 (a token)",
         lambda c, case: c.pfs.inspect_branch(branch=branch("default", case.data["repo"])), setup=with_file),
    Call("pfs.ListBranch", "repoReader", "pfs/server/server_branch.go:488",
         lambda c, case: drain(c.pfs.list_branch(repo=repo_msg("default", case.data["repo"]))), setup=with_file,
         refused=on_repo("REPO_LIST_BRANCH")),
    Call("pfs.DeleteBranch", "repoWriter", "pfs/server/server_branch.go:526",
         lambda c, case: c.pfs.delete_branch(branch=branch("default", case.data["repo"], "dev")), setup=with_branch,
         refused=on_repo("REPO_DELETE_BRANCH")),
    Call("pfs.StartCommit", "repoWriter", "pfs/server/server_commit.go:176",
         lambda c, case: c.pfs.start_commit(branch=branch("default", case.data["repo"])), setup=with_file,
         refused=on_repo("REPO_WRITE")),
    Call("pfs.FinishCommit", "repoWriter", "pfs/server/val_server.go:49",
         lambda c, case: c.pfs.finish_commit(commit=pfs.Commit(repo=repo_msg("default", case.data["repo"]),
                                                               id=case.data["open"])),
         setup=with_open_commit, refused=on_repo("REPO_WRITE")),
    Call("pfs.InspectCommit", "repoReader", "pfs/server/server_commit.go:451",
         lambda c, case: c.pfs.inspect_commit(commit=head("default", case.data["repo"])), setup=with_file,
         refused=on_repo("REPO_INSPECT_COMMIT")),
    Call("pfs.ListCommit", "repoReader", "pfs/server/server_commit.go:575",
         lambda c, case: drain(c.pfs.list_commit(repo=repo_msg("default", case.data["repo"]))), setup=with_file,
         refused=on_repo("REPO_LIST_COMMIT")),
    Call("pfs.SubscribeCommit", "repoReader", "as ListCommit (pachd 2.12: a token only)",
         lambda c, case: first(c, lambda stubs: stubs.pfs.subscribe_commit(
             repo=repo_msg("default", case.data["repo"]), branch="master")),
         setup=with_file, refused=on_repo("REPO_LIST_COMMIT")),
    Call("pfs.InspectCommitSet", "repoReader", "as InspectCommit, server_commit.go:451 (pachd 2.12: a token only)",
         lambda c, case: drain(c.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=case.data["commit"]))),
         setup=with_file,
         refused=lambda case: Refused(grpc.StatusCode.NOT_FOUND,
                                      f"no commits found for commitset {case.data['commit']}")),
    Call("pfs.ListCommitSet", "repoReader", "as InspectCommit, server_commit.go:451 (pachd 2.12: a token only)",
         lambda c, case: {s.commit_set.id for s in c.pfs.list_commit_set()}, setup=with_file,
         refused=hidden(lambda result, case: case.data["commit"] not in result),
         allowed=lambda result, root, case: case.data["commit"] in result),
    Call("pfs.SquashCommitSet", "clusterAdmin",
         "middleware/auth/interceptor.go:153 (REPO_DELETE_COMMIT on the cluster)",
         lambda c, case: c.pfs.squash_commit_set(commit_set=pfs.CommitSet(id=case.data["first"])),
         setup=with_two_commits, refused=on_cluster("REPO_DELETE_COMMIT")),
    Call("pfs.DropCommitSet", "clusterAdmin", "middleware/auth/interceptor.go:154 (REPO_DELETE_COMMIT on the cluster)",
         lambda c, case: c.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=case.data["commit"])),
         setup=with_two_commits, refused=on_cluster("REPO_DELETE_COMMIT")),
    # ---- PFS: files
    Call("pfs.ModifyFile (starts a commit)", "repoWriter", "pfs/server/server_commit.go:176",
         lambda c, case: _modify(c, case, head("default", case.data["repo"])), setup=with_file,
         refused=on_repo("REPO_WRITE")),
    Call("pfs.ModifyFile into an open commit", "repoWriter",
         "as StartCommit, pfs/server/server_commit.go:176 (pachd 2.12: a token)",
         lambda c, case: _modify(c, case, pfs.Commit(repo=repo_msg("default", case.data["repo"]),
                                                     id=case.data["open"])),
         setup=with_open_commit, refused=on_repo("REPO_WRITE")),
    Call("pfs.GetFile", "repoReader", "pfs/server/server_commit.go:917",
         lambda c, case: drain(c.pfs.get_file(file=file_at("default", case.data["repo"], "/a.txt"))),
         setup=with_file, refused=on_repo("REPO_READ")),
    Call("pfs.GetFileTAR", "repoReader", "pfs/server/server_commit.go:917",
         lambda c, case: drain(c.pfs.get_file_tar(file=file_at("default", case.data["repo"], "/a.txt"))),
         setup=with_file, refused=on_repo("REPO_READ")),
    Call("pfs.InspectFile", "repoReader", "pfs/server/val_server.go:60",
         lambda c, case: c.pfs.inspect_file(file=file_at("default", case.data["repo"], "/a.txt")),
         setup=with_file, refused=on_repo("REPO_INSPECT_FILE")),
    Call("pfs.ListFile", "repoReader", "pfs/server/val_server.go:71",
         lambda c, case: drain(c.pfs.list_file(file=file_at("default", case.data["repo"], "/"))),
         setup=with_file, refused=on_repo("REPO_LIST_FILE")),
    Call("pfs.WalkFile", "repoReader", "pfs/server/val_server.go:92",
         lambda c, case: drain(c.pfs.walk_file(file=file_at("default", case.data["repo"], "/"))),
         setup=with_file, refused=on_repo("REPO_READ REPO_LIST_FILE")),
    Call("pfs.GlobFile", "repoReader", "pfs/server/val_server.go:105",
         lambda c, case: drain(c.pfs.glob_file(commit=head("default", case.data["repo"]), pattern="/*")),
         setup=with_file, refused=on_repo("REPO_READ REPO_LIST_FILE")),
    Call("pfs.DiffFile", "repoReader", "pfs/server/server_file.go:535,540",
         lambda c, case: drain(c.pfs.diff_file(new_file=file_at("default", case.data["repo"], "/"))),
         setup=with_two_commits, refused=on_repo("REPO_READ")),
    # ---- PPS
    Call("pps.CreatePipeline", "repoReader", "pps/server/api_server.go:387 (reader of every input)",
         _create_in("default"), setup=with_input, refused=on_repo("REPO_READ", "in"),
         allowed=lambda result, root, case: root.pps.inspect_pipeline(pipeline=pipe_msg("default", f"np{case.n}"))),
    Call(f"pps.CreatePipeline in project {LAB}", "clusterAdmin",
         "pps/server/api_server.go:387, then :2563 creates the output repo: pfs/server/server_repo.go:43",
         _create_in(LAB), setup=with_input,
         refused=by_role(none=on_repo("REPO_READ", "in"),
                         **dict.fromkeys(("repoReader", "repoWriter", "repoOwner"), lambda case: Refused(
                             grpc.StatusCode.PERMISSION_DENIED,
                             denied(case.role, "PROJECT_CREATE_REPO", "PROJECT", LAB,
                                    f"error creating output repo for np{case.n}: {CREATE_REPO_TEXT}"))))),
    Call("pps.CreatePipeline update=true", "repoWriter", "pps/server/api_server.go:387 (inputs), :404 (output)",
         _update, setup=with_pipeline_and_input,
         refused=by_role(none=on_repo("REPO_READ", "in"), repoReader=pipeline_repo("REPO_WRITE"))),
    Call("pps.InspectPipeline", "none", "pps/server/api_server.go:2837 (a token: spec repos are world-readable)",
         lambda c, case: c.pps.inspect_pipeline(pipeline=_world_pipe(case)), setup=on_world("out")),
    Call(f"pps.ListPipeline of project {LAB}", "repoReader", "pps/server/api_server.go:2968,2976",
         lambda c, case: {p.pipeline.name for p in c.pps.list_pipeline(projects=[pfs.Project(name=LAB)])},
         setup=on_world("lab_out"),
         refused=hidden(lambda result, case: case.world["lab_out"][1] not in result),
         allowed=lambda result, root, case: case.world["lab_out"][1] in result),
    Call("pps.StopPipeline", "repoWriter", "pps/server/api_server.go:3325,404",
         lambda c, case: c.pps.stop_pipeline(pipeline=pipe_msg("default", case.data["pipeline"])),
         setup=with_pipeline, refused=pipeline_repo("REPO_WRITE")),
    Call("pps.StartPipeline", "repoWriter", "pps/server/api_server.go:3278,404",
         lambda c, case: c.pps.start_pipeline(pipeline=pipe_msg("default", case.data["pipeline"])),
         setup=with_stopped_pipeline, refused=pipeline_repo("REPO_WRITE")),
    Call("pps.DeletePipeline", "repoOwner", "pps/server/api_server.go:3067 (stops it: REPO_WRITE), :413 (REPO_DELETE)",
         lambda c, case: c.pps.delete_pipeline(pipeline=pipe_msg("default", case.data["pipeline"])),
         setup=with_pipeline,
         refused=by_role(none=pipeline_repo("REPO_WRITE", STOP_PIPELINE),
                         repoReader=pipeline_repo("REPO_WRITE", STOP_PIPELINE),
                         repoWriter=pipeline_repo("REPO_DELETE"))),
    Call("pps.DeletePipelines of a project", "repoOwner", "pps/server/api_server.go:3243 (stops each), :413",
         lambda c, case: c.pps.delete_pipelines(projects=[pfs.Project(name=case.data["project"])]),
         setup=with_pipeline_in_own_project,
         refused=by_role(none=pipeline_repo("REPO_WRITE", 'stop pipeline "{pipeline}": '),
                         repoReader=pipeline_repo("REPO_WRITE", 'stop pipeline "{pipeline}": '),
                         repoWriter=pipeline_repo("REPO_DELETE"))),
    Call("pps.DeleteAll", "clusterAdmin", "middleware/auth/interceptor.go:258 (CLUSTER_DELETE_ALL)",
         lambda c, case: c.pps.delete_all(), setup=with_pipeline, destructive=True,
         refused=on_cluster("CLUSTER_DELETE_ALL")),
    Call("pps.StopJob", "repoWriter", "pps/server/api_server.go:985 finishes its commits: pfs/server/val_server.go:49",
         lambda c, case: c.pps.stop_job(job=_job(case)), setup=with_pipeline, refused=pipeline_repo("REPO_WRITE")),
    Call("pps.DeleteJob", "repoWriter", "pps/server/api_server.go:927 (stopJob), pfs/server/val_server.go:49",
         lambda c, case: c.pps.delete_job(job=_job(case)), setup=with_pipeline, refused=pipeline_repo("REPO_WRITE")),
    Call("pps.RestartDatum", "repoWriter", "as StopJob (pachd 2.12: a token only, pps/server/api_server.go:1011)",
         lambda c, case: c.pps.restart_datum(job=_job(case), data_filters=["/a.txt"]), setup=with_pipeline,
         refused=pipeline_repo("REPO_WRITE"), tags=("answers-after-check",)),
    Call("pps.InspectJob", "repoReader", "pps/server/api_server.go:701",
         lambda c, case: c.pps.inspect_job(job=case.world["job"], details=True), setup=on_world("out"),
         refused=on_world_repo("PIPELINE_LIST_JOB")),
    Call("pps.ListJob of a pipeline", "repoReader", "pps/server/api_server.go:783",
         lambda c, case: drain(c.pps.list_job(pipeline=_world_pipe(case))), setup=on_world("out"),
         refused=on_world_repo("PIPELINE_LIST_JOB")),
    Call("pps.SubscribeJob", "repoReader", "pps/server/api_server.go:882",
         lambda c, case: first(c, lambda stubs: stubs.pps.subscribe_job(pipeline=_world_pipe(case))),
         setup=on_world("out"),
         refused=on_world_repo("PIPELINE_LIST_JOB")),
    Call("pps.InspectJobSet", "repoReader", "as InspectCommit on each job's output commit, "
         "pfs/server/server_commit.go:451 (pachd 2.12 asks it only of the commits it waits on: :389)",
         lambda c, case: drain(c.pps.inspect_job_set(job_set=pps.JobSet(id=case.world["job"].id))),
         setup=on_world("out"), refused=on_world_repo("REPO_INSPECT_COMMIT")),
    Call("pps.ListJobSet", "repoReader", "as ListJob, pps/server/api_server.go:783",
         lambda c, case: {s.job_set.id for s in c.pps.list_job_set()}, setup=on_world("out"),
         refused=hidden(lambda result, case: case.world["job"].id not in result),
         allowed=lambda result, root, case: case.world["job"].id in result),
    Call("pps.InspectDatum", "repoReader", "pps/server/api_server.go:1234 reads the job's meta commit: "
         "pfs/server/server_commit.go:917",
         lambda c, case: c.pps.inspect_datum(datum=case.world["datum"]), setup=on_world("out"),
         refused=on_world_repo("REPO_READ")),
    Call("pps.ListDatum of a job", "repoReader", "pps/server/api_server.go:1234, pfs/server/server_commit.go:917",
         lambda c, case: drain(c.pps.list_datum(job=case.world["job"])), setup=on_world("out"),
         refused=on_world_repo("REPO_READ")),
    Call("pps.ListDatum of an input", "repoReader", "pps/server/api_server.go:1170, pfs/server/server_commit.go:451",
         lambda c, case: drain(c.pps.list_datum(input=pps.Input(pfs=pps.PfsInput(repo="w-in", glob="/*")))),
         setup=on_world("in"), refused=on_world_repo("REPO_INSPECT_COMMIT", "in")),
    Call("pps.CreateDatum", "repoReader", "pps/server/api_server.go:1304, pfs/server/server_commit.go:451",
         lambda c, case: drain(c.pps.create_datum(iter([pps.CreateDatumRequest(start=pps.StartCreateDatumRequest(
             input=pps.Input(pfs=pps.PfsInput(repo="w-in", glob="/*")), number=10))]))),
         setup=on_world("in"), refused=on_world_repo("REPO_INSPECT_COMMIT", "in")),
    Call("pps.GetLogs of a pipeline", "repoReader", "pps/server/api_server.go:1487 (reader of inputs, :402 and output)",
         lambda c, case: drain(c.pps.get_logs(pipeline=_world_pipe(case))), setup=on_world("in", "out"),
         refused=on_world_repo("REPO_READ", "in")),
    Call("pps.RunCron", "none", "pps/server/api_server.go:3370 (a token; no cron input here)",
         _raises_unknown(lambda c, case: c.pps.run_cron(pipeline=_world_pipe(case)), "doesn't have a cron input"),
         setup=on_world("out")),
    # ---- transactions
    Call("transaction.StartTransaction", "none", "middleware/auth/interceptor.go:281 (a token)",
         lambda c, case: _started(c)),
    Call("transaction.ListTransaction", "none", "middleware/auth/interceptor.go:284 (a token)",
         lambda c, case: c.transaction.list_transaction()),
    Call("transaction.FinishTransaction holding a CreateBranch", "repoWriter",
         "transaction/server/driver.go:177 runs it as the finisher: pfs/server/server_branch.go:232",
         lambda c, case: c.transaction.finish_transaction(transaction=case.data["txn"]), setup=with_transaction,
         refused=on_repo("REPO_CREATE_BRANCH", prefix=IN_TXN)),
    Call("transaction: StartCommit appended to pach:root's transaction", "repoWriter",
         "transaction/server/driver.go:206 (a dry run as the caller): pfs/server/server_commit.go:176",
         lambda c, case: _in_transaction(c, case).pfs.start_commit(branch=branch("default", case.data["repo"])),
         setup=with_empty_transaction, refused=on_repo("REPO_WRITE", prefix=IN_TXN)),
    Call("transaction.BatchTransaction holding a StartCommit", "repoWriter",
         "transaction/server/driver.go:43: pfs/server/server_commit.go:176",
         lambda c, case: c.transaction.batch_transaction(requests=[transaction.TransactionRequest(
             start_commit=pfs.StartCommitRequest(branch=branch("default", case.data["repo"])))]),
         setup=with_file, refused=on_repo("REPO_WRITE", prefix=IN_TXN)),
    Call("transaction.DeleteAll", "clusterAdmin", "middleware/auth/interceptor.go:286 (CLUSTER_DELETE_ALL)",
         lambda c, case: c.transaction.delete_all(), setup=with_transaction, refused=on_cluster("CLUSTER_DELETE_ALL")),
    # ---- admin
    Call("admin.InspectCluster", "none", "middleware/auth/interceptor.go:28 (no token needed)",
         lambda c, case: c.admin.inspect_cluster()),
    Call("version.GetVersion", "none", "middleware/auth/interceptor.go:292 (no token needed)",
         lambda c, case: c.get_version()),
]
