"""`auth_v2.API` over the auth engine, and the one gate every call passes (pachd's auth
interceptor, src/internal/middleware/auth/interceptor.go): who the caller is, from the
`authn-token` metadata header, before any engine code runs."""

from __future__ import annotations

import secrets
import threading
from typing import Optional

from pachyderm_sdk.api import auth as api

from ..errors import Unimplemented
from ..rpc import ts
from .engine import ALREADY_ACTIVATED, NOT_ACTIVATED, Auth

TOKEN_HEADER = "authn-token"

# pachd's policy per method: None = no token needed, "auth" = a valid token (only when auth is on),
# a permission name = that permission on the cluster. Unlisted methods need a valid token.
POLICY = {
    "InspectCluster": None,
    "GetVersion": None,
    "Activate": None,
    "Authenticate": None,
    "Authorize": None,
    "WhoAmI": None,
    "GetOIDCLogin": None,
    "GetRobotToken": "CLUSTER_AUTH_GET_ROBOT_TOKEN",
    "Deactivate": "CLUSTER_AUTH_DEACTIVATE",
    "GetConfiguration": "CLUSTER_AUTH_GET_CONFIG",
    "GetPermissionsForPrincipal": "CLUSTER_AUTH_GET_PERMISSIONS_FOR_PRINCIPAL",
    "GetGroupsForPrincipal": "CLUSTER_AUTH_GET_GROUPS",
    "SetGroupsForUser": "CLUSTER_AUTH_MODIFY_GROUP_MEMBERS",
    "ModifyMembers": "CLUSTER_AUTH_MODIFY_GROUP_MEMBERS",
    "GetUsers": "CLUSTER_AUTH_GET_GROUP_USERS",
    "RevokeAuthTokensForUser": "CLUSTER_AUTH_REVOKE_USER_TOKENS",
    "RotateRootToken": "CLUSTER_AUTH_ROTATE_ROOT_TOKEN",
    "CreateProject": "PROJECT_CREATE",
    "SquashCommitSet": "REPO_DELETE_COMMIT",
    "DropCommitSet": "REPO_DELETE_COMMIT",
}

_local = threading.local()


def caller() -> Optional[str]:
    """The subject of the call this thread serves; None when auth is off or the call needs none."""
    return getattr(_local, "subject", None)


def token_of(ctx) -> Optional[str]:
    for key, value in ctx.invocation_metadata() or ():
        if key == TOKEN_HEADER:
            return value
    return None


def gate(auth: Auth, service: str, name: str, ctx) -> None:
    """Sets the caller of this call, or raises pachd's refusal. With auth off every other call
    passes (pachd's authDisabledOr) and every auth call but Activate is UNIMPLEMENTED."""
    _local.subject = None
    if not auth.active:
        if service == "auth_v2.API" and name != "Activate":
            raise Unimplemented(NOT_ACTIVATED)
        return
    policy = POLICY.get(name, "auth")
    if policy is None:
        return
    subject, _ = auth.who_am_i(token_of(ctx))
    if policy != "auth":
        auth.check(subject, "CLUSTER", "", policy)
    _local.subject = subject


def _resource(r: Optional[api.Resource]) -> tuple[str, str]:
    if r is None:
        return "CLUSTER", ""
    return api.ResourceType(r.type).name, r.name


class AuthService:
    """Translation only: messages in, engine calls, messages out."""

    def __init__(self, auth: Auth, store):
        self.auth, self.store = auth, store

    def Activate(self, req: api.ActivateRequest, ctx):
        if self.auth.active:
            raise Unimplemented(ALREADY_ACTIVATED)
        token = req.root_token or secrets.token_hex(16)
        projects = [row[0] for row in self.store.list_projects()]
        repos = [f"{r.project}/{r.name}" for r in self.store.list_repos("user")]
        self.auth.activate(token, projects, repos)
        return api.ActivateResponse(pach_token=token)

    def Deactivate(self, req, ctx):
        self.auth.require_active()
        self.auth.deactivate()
        return api.DeactivateResponse()

    def WhoAmI(self, req, ctx):
        subject, expiration = self.auth.who_am_i(token_of(ctx))
        return api.WhoAmIResponse(username=subject, expiration=ts(expiration))

    def GetRobotToken(self, req: api.GetRobotTokenRequest, ctx):
        return api.GetRobotTokenResponse(token=self.auth.robot_token(req.robot, req.ttl))

    def RevokeAuthToken(self, req: api.RevokeAuthTokenRequest, ctx):
        return api.RevokeAuthTokenResponse(number=self.auth.revoke(req.token))

    def ModifyRoleBinding(self, req: api.ModifyRoleBindingRequest, ctx):
        rtype, name = _resource(req.resource)
        self.auth.modify_binding(caller(), rtype, name, req.principal, list(req.roles))
        return api.ModifyRoleBindingResponse()

    def GetRoleBinding(self, req: api.GetRoleBindingRequest, ctx):
        rtype, name = _resource(req.resource)
        entries = self.auth.get_binding(rtype, name)
        return api.GetRoleBindingResponse(
            binding=api.RoleBinding(entries={k: api.Roles(roles={r: True for r in v}) for k, v in entries.items()})
        )

    def _permissions(self, subject: str, resource) -> api.GetPermissionsResponse:
        rtype, name = _resource(resource)
        perms, roles = self.auth.permissions(subject, rtype, name)
        return api.GetPermissionsResponse(permissions=[api.Permission[p] for p in perms], roles=roles)

    def GetPermissions(self, req: api.GetPermissionsRequest, ctx):
        return self._permissions(caller(), req.resource)

    def GetPermissionsForPrincipal(self, req: api.GetPermissionsForPrincipalRequest, ctx):
        return self._permissions(req.principal, req.resource)

    def Authorize(self, req: api.AuthorizeRequest, ctx):
        subject, _ = self.auth.who_am_i(token_of(ctx))
        rtype, name = _resource(req.resource)
        wanted = [api.Permission(p).name for p in req.permissions]
        ev = self.auth.evaluate(subject, rtype, name, wanted)
        return api.AuthorizeResponse(
            authorized=ev.done(),
            missing=[api.Permission[p] for p in ev.missing],
            satisfied=[api.Permission[p] for p in ev.satisfied],
            principal=subject,
        )

    def GetConfiguration(self, req, ctx):
        """No OIDC here: pachd's answer when none is configured, an empty OIDC config."""
        return api.GetConfigurationResponse(configuration=api.OidcConfig())

    def GetGroups(self, req, ctx):
        return api.GetGroupsResponse(groups=self.auth.groups_of(caller()))

    def GetGroupsForPrincipal(self, req: api.GetGroupsForPrincipalRequest, ctx):
        return api.GetGroupsResponse(groups=self.auth.groups_of(req.principal))

    def SetGroupsForUser(self, req: api.SetGroupsForUserRequest, ctx):
        self.auth.set_groups(req.username, req.groups)
        return api.SetGroupsForUserResponse()

    def ModifyMembers(self, req: api.ModifyMembersRequest, ctx):
        self.auth.modify_members(req.group, req.add, req.remove)
        return api.ModifyMembersResponse()

    def GetUsers(self, req: api.GetUsersRequest, ctx):
        if not req.group:  # pachd: every user with a group membership record
            return api.GetUsersResponse(usernames=sorted(self.auth.state.get("members", {})))
        return api.GetUsersResponse(usernames=self.auth.users_of(req.group))

    def GetRolesForPermission(self, req: api.GetRolesForPermissionRequest, ctx):
        return api.GetRolesForPermissionResponse(
            roles=[
                api.Role(
                    name=r.name,
                    permissions=[api.Permission[p] for p in r.permissions],
                    can_be_bound_to=[api.ResourceType[t] for t in r.can_be_bound_to],
                    returned_for=[api.ResourceType[t] for t in r.returned_for],
                )
                for r in self.auth.roles_for_permission(api.Permission(req.permission).name)
            ]
        )


def unsupported(name: str):
    def call(req, ctx):
        raise Unimplemented(f"{name} is not supported by the embedded server")

    return call
