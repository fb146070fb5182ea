"""Pachd 2.12's built-in roles (src/server/auth/server/roles.go): the permissions each grants,
the resource types it binds to, and those whose permission answers list it."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    name: str
    permissions: tuple  # permission names, pachd's order
    can_be_bound_to: tuple
    returned_for: tuple


def _combine(*sets) -> tuple:
    out: list = []
    for s in sets:
        out.extend(p for p in s if p not in out)
    return tuple(out)


_C, _P, _R, _J = "CLUSTER", "PROJECT", "REPO", "JOB"

REPO_READER = (
    "REPO_READ",
    "REPO_INSPECT_COMMIT",
    "REPO_LIST_COMMIT",
    "REPO_LIST_BRANCH",
    "REPO_LIST_FILE",
    "REPO_INSPECT_FILE",
    "REPO_ADD_PIPELINE_READER",
    "REPO_REMOVE_PIPELINE_READER",
    "PIPELINE_LIST_JOB",
)
REPO_WRITER = _combine(
    REPO_READER,
    ("REPO_WRITE", "REPO_DELETE_COMMIT", "REPO_CREATE_BRANCH", "REPO_DELETE_BRANCH", "REPO_ADD_PIPELINE_WRITER"),
)
REPO_OWNER = _combine(REPO_WRITER, ("REPO_MODIFY_BINDINGS", "REPO_DELETE"))
OIDC_APP_ADMIN = tuple(
    f"CLUSTER_IDENTITY_{x}"
    for x in ("DELETE_OIDC_CLIENT", "CREATE_OIDC_CLIENT", "UPDATE_OIDC_CLIENT", "LIST_OIDC_CLIENTS", "GET_OIDC_CLIENT")
)
IDP_ADMIN = tuple(f"CLUSTER_IDENTITY_{x}" for x in ("CREATE_IDP", "UPDATE_IDP", "LIST_IDPS", "GET_IDP", "DELETE_IDP"))
IDENTITY_ADMIN = ("CLUSTER_IDENTITY_SET_CONFIG", "CLUSTER_IDENTITY_GET_CONFIG")
JOB_ADMIN = ("JOB_SKIP_CTX",)
DEBUGGER = ("CLUSTER_DEBUG_DUMP", "CLUSTER_GET_PACHD_LOGS", "CLUSTER_GET_LOKI_LOGS")
LOKI_LOG_READER = ("CLUSTER_GET_LOKI_LOGS",)
ROBOT_USER = ("CLUSTER_AUTH_GET_ROBOT_TOKEN",)
LICENSE_ADMIN = tuple(
    f"CLUSTER_LICENSE_{x}"
    for x in ("ACTIVATE", "GET_CODE", "ADD_CLUSTER", "UPDATE_CLUSTER", "DELETE_CLUSTER", "LIST_CLUSTERS")
)
SECRET_ADMIN = ("CLUSTER_CREATE_SECRET", "CLUSTER_LIST_SECRETS", "SECRET_INSPECT", "SECRET_DELETE")
PACHD_LOG_READER = ("CLUSTER_GET_PACHD_LOGS",)
PROJECT_VIEWER = ("PROJECT_LIST_REPO",)
PROJECT_WRITER = _combine(PROJECT_VIEWER, ("PROJECT_CREATE_REPO",))
PROJECT_OWNER = _combine(
    REPO_OWNER, PROJECT_WRITER, ("PROJECT_DELETE", "PROJECT_MODIFY_BINDINGS", "PROJECT_SET_DEFAULTS")
)
PROJECT_CREATOR = ("PROJECT_CREATE",)
CLUSTER_ADMIN = _combine(
    REPO_OWNER,
    OIDC_APP_ADMIN,
    IDP_ADMIN,
    IDENTITY_ADMIN,
    DEBUGGER,
    LOKI_LOG_READER,
    ROBOT_USER,
    LICENSE_ADMIN,
    SECRET_ADMIN,
    PACHD_LOG_READER,
    PROJECT_OWNER,
    PROJECT_CREATOR,
    JOB_ADMIN,
    (
        "CLUSTER_MODIFY_BINDINGS",
        "CLUSTER_GET_BINDINGS",
        "CLUSTER_AUTH_ACTIVATE",
        "CLUSTER_AUTH_DEACTIVATE",
        "CLUSTER_AUTH_GET_CONFIG",
        "CLUSTER_AUTH_SET_CONFIG",
        "CLUSTER_AUTH_MODIFY_GROUP_MEMBERS",
        "CLUSTER_AUTH_GET_GROUPS",
        "CLUSTER_AUTH_GET_GROUP_USERS",
        "CLUSTER_AUTH_EXTRACT_TOKENS",
        "CLUSTER_AUTH_RESTORE_TOKEN",
        "CLUSTER_AUTH_ROTATE_ROOT_TOKEN",
        "CLUSTER_AUTH_DELETE_EXPIRED_TOKENS",
        "CLUSTER_AUTH_GET_PERMISSIONS_FOR_PRINCIPAL",
        "CLUSTER_AUTH_REVOKE_USER_TOKENS",
        "CLUSTER_ENTERPRISE_ACTIVATE",
        "CLUSTER_ENTERPRISE_HEARTBEAT",
        "CLUSTER_ENTERPRISE_GET_CODE",
        "CLUSTER_ENTERPRISE_DEACTIVATE",
        "CLUSTER_DELETE_ALL",
        "CLUSTER_ENTERPRISE_PAUSE",
        "CLUSTER_SET_DEFAULTS",
        "CLUSTER_EDIT_CLUSTER_METADATA",
        "CLUSTER_SNAPSHOTTER",
        "CLUSTER_RESTART_PACHYDERM",
    ),
)

ROLES = {
    r.name: r
    for r in (
        Role("repoReader", REPO_READER, (_C, _P, _R), (_R,)),
        Role("repoWriter", REPO_WRITER, (_C, _P, _R), (_R,)),
        Role("repoOwner", REPO_OWNER, (_C, _P, _R), (_R,)),
        Role("oidcAppAdmin", OIDC_APP_ADMIN, (_C,), (_C,)),
        Role("idpAdmin", IDP_ADMIN, (_C,), (_C,)),
        Role("identityAdmin", IDENTITY_ADMIN, (_C,), (_C,)),
        Role("jobAdmin", JOB_ADMIN, (_J, _C), (_J, _C)),
        Role("debugger", DEBUGGER, (_C,), (_C,)),
        Role("lokiLogReader", LOKI_LOG_READER, (_C,), (_C,)),
        Role("robotUser", ROBOT_USER, (_C,), (_C,)),
        Role("licenseAdmin", LICENSE_ADMIN, (_C,), (_C,)),
        Role("secretAdmin", SECRET_ADMIN, (_C,), (_C,)),
        Role("pachdLogReader", PACHD_LOG_READER, (_C,), (_C,)),
        Role("projectViewer", PROJECT_VIEWER, (_C, _P), (_P,)),
        Role("projectWriter", PROJECT_WRITER, (_C, _P), (_P,)),
        Role("projectOwner", PROJECT_OWNER, (_C, _P), (_P, _R)),
        Role("projectCreator", PROJECT_CREATOR, (_C,), (_C,)),
        Role("clusterAdmin", CLUSTER_ADMIN, (_C,), (_C, _P, _R)),
    )
}
