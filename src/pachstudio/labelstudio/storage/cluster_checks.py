"""Check connection: say precisely what is wrong, in the words a Label Studio user can act on."""

from rest_framework.exceptions import ValidationError

from .. import mount_client
from ..mount_client import MountServerError
from .paths import BadPath, normalize_prefix


def default_project() -> str:
    """The cluster context's project when the mount server tells it, else Pachyderm's `default`."""
    try:
        return mount_client.config().get("project") or "default"
    except MountServerError:
        return "default"


def _fail(message: str):
    raise ValidationError(message)


def explain(exc: MountServerError) -> str:
    """The mount server's words, plus what to do when the cluster refused our token."""
    message = str(exc)
    lowered = message.lower()
    if "refused" in lowered and "token" in lowered:
        message += (
            ". The session_token of the active context in the mounted Pachyderm config.json is wrong "
            "or expired: run `pachctl auth login` (or put a valid token in session_token) and restart "
            "the container."
        )
    elif "user unauthenticated" in lowered:
        message += (
            ". The Pachyderm cluster has auth on and the mounted Pachyderm config.json holds no "
            "session_token: run `pachctl auth login` (or put a valid token in session_token) and restart "
            "the container."
        )
    elif "refused" in lowered and "not authorized" in lowered:
        message += ". Ask a cluster admin for access to this repo (pachctl auth set repo ...)."
    return message


def check_cluster():
    try:
        mount_client.health()
        cfg = mount_client.config()
    except MountServerError as exc:
        _fail(explain(exc))
    if cfg.get("cluster_status") == "INVALID":
        _fail(f"Pachyderm cluster unreachable at {cfg.get('pachd_address') or '(no address configured)'}")


def check_access(found: dict, project: str, repo: str, write: bool, who: str = "") -> None:
    """The cluster token's access to the repo, as the mount server reports it (pachctl's
    `authorization`: off, none, read, write): a Source needs read, a Target write."""
    access = found.get("authorization") or "off"
    if access == "off" or access == "write" or (access == "read" and not write):
        return
    needed = "write permission (REPO_WRITE)" if write else "read permission (REPO_READ)"
    have = "may only read it" if access == "read" else "has no access to it"
    who = who or ("a Target" if write else "a Source")
    _fail(
        f"repo {project}/{repo}: the cluster token {have}; {who} needs {needed}. "
        f"Ask a cluster admin for the {'repoWriter' if write else 'repoReader'} role on it "
        f"(pachctl auth set repo {repo} {'repoWriter' if write else 'repoReader'} <user>)."
    )


def check_repo(storage, branch_must_exist: bool, write: bool = False):
    if not storage.repo:
        _fail("repo is required")
    check_branch(storage.project_name, storage.repo, storage.branch or "master", branch_must_exist, write)


def check_branch(project: str, repo: str, branch: str, must_exist: bool, write: bool = False, what: str = ""):
    """The project, the repo and (`must_exist`) the branch are there, and the token may use the
    repo. `what`: the field being checked, named in front of each refusal."""
    lead = f"{what}: " if what else ""
    try:
        names = [(p.get("project") or {}).get("name") for p in mount_client.projects()]  # ProjectInfo
        if project not in names:
            _fail(f'{lead}Pachyderm project "{project}" not found (projects: {", ".join(sorted(names)) or "none"})')
        found = [
            r for r in mount_client.repos() if r.get("repo") == repo and (r.get("project") or "default") == project
        ]
    except MountServerError as exc:
        _fail(lead + explain(exc))
    if not found:
        _fail(f'{lead}repo "{repo}" not found in Pachyderm project "{project}"')
    check_access(found[0], project, repo, write, who=f"{what} of a Source" if what else "")
    branches = found[0].get("branches") or []
    if must_exist and branch not in branches:
        _fail(f'{lead}branch "{branch}" not found in repo {project}/{repo} (branches: {", ".join(branches) or "none"})')


def ensure_mount(storage) -> dict:
    """Mount (idempotent); a 404 names what is missing, e.g. a pinned commit."""
    try:
        return mount_client.mount(storage.mount_spec())
    except MountServerError as exc:
        if exc.status == 404 and getattr(storage, "commit", None):
            _fail(f'commit "{storage.commit}" not found in repo {storage.project_name}/{storage.repo}: {exc}')
        _fail(f"cannot mount {storage.describe()}: {explain(exc)}")


def check_prefix(storage):
    try:
        prefix = normalize_prefix(storage.prefix)
    except BadPath as exc:
        _fail(f"prefix: {exc}")
    return prefix


def check_source(storage):
    check_prefix(storage)
    if storage.regex_filter:
        import re

        try:
            re.compile(storage.regex_filter)
        except re.error as exc:
            _fail(f'regex_filter "{storage.regex_filter}" is not a valid regular expression: {exc}')
    check_cluster()
    check_repo(storage, branch_must_exist=not storage.commit)
    ensure_mount(storage)
    check_predictions(storage)
    if storage.clean_prefix or storage.regex_filter:
        try:
            for _ in storage.iter_objects():
                return
        except MountServerError as exc:
            _fail(f"cannot list {storage.describe()}: {explain(exc)}")
        what = f'under prefix "{storage.clean_prefix}"' if storage.clean_prefix else "at all"
        if storage.regex_filter:
            what += f' matching regex "{storage.regex_filter}"'
        _fail(
            f"no files {what} in {storage.describe()}" + ("" if storage.recursive_scan else " (recursive scan is off)")
        )


def check_predictions(storage):
    """`predictions_from` names a branch the token may read (it is read at each Sync)."""
    if not storage.predictions_from:
        return
    try:
        project, repo, branch = storage.predictions_branch()
    except ValueError as exc:
        _fail(f"predictions_from: {exc}")
    check_branch(project, repo, branch, must_exist=True, what="predictions_from")


def check_target(storage):
    check_prefix(storage)
    if storage.file_format not in ("annotation", "task"):
        _fail(f'file_format must be "annotation" or "task", not "{storage.file_format}"')
    check_cluster()
    check_repo(storage, branch_must_exist=False, write=True)
    ensure_mount(storage)
