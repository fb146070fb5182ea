"""Pachd's auth as a plain engine: tokens, role bindings and permission checks.

Follows pachd 2.12 (src/server/auth/server/api_server.go, authorize_req.go, src/auth/auth.go):
tokens are kept as their SHA-256 (never in clear), role bindings per resource (`CLUSTER:`,
`PROJECT:<name>`, `REPO:<project>/<repo>`), a permission is granted by a role bound to the
caller or to `allClusterUsers` on the cluster, the repo's project, or the repo. The state is one
JSON file under the server's data directory, written atomically, so it survives restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from typing import Iterable, Optional

from ..errors import Internal, NotFound, PermissionDenied, Unauthenticated, Unimplemented, Unknown
from .roles import ROLES

ALL_PERMISSIONS = sorted({p for r in ROLES.values() for p in r.permissions})

ROOT = "pach:root"
INTERNAL = "internal:auth-server"
ALL_USERS = "allClusterUsers"
PREFIXES = ("pipeline:", "internal:", "robot:", "pach:", "user:", "group:")
STATE_FILE = "auth.json"


# pachd's own texts (src/auth/auth.go)
NOT_ACTIVATED = "the auth service is not activated"
ALREADY_ACTIVATED = "the auth service is already activated"
NOT_SIGNED_IN = "no authentication token (try logging in)"
BAD_TOKEN = "provided auth token is corrupted or has expired (try logging in again)"
EXPIRED_TOKEN = "token expiration is in the past"


def not_authorized(subject: str, rtype: str, name: str, required: Iterable[str]) -> PermissionDenied:
    """pachd's ErrNotAuthorized, word for word (Go prints the permission list as `[A B]`)."""
    return PermissionDenied(
        f"{subject} is not authorized to perform this operation - needs permissions [{' '.join(required)}] "
        f"on {rtype} {name}. Run `pachctl auth roles-for-permission` to find roles that grant a given permission."
    )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def resource_key(rtype: str, name: str = "") -> str:
    return "CLUSTER:" if rtype == "CLUSTER" else f"{rtype}:{name}"


class Evaluation:
    """One authorization request as pachd's authorizeRequest: the roles met so far and the
    permissions still missing."""

    def __init__(self, subject: str, wanted: Iterable[str], groups: Iterable[str] = ()):
        self.subject = subject
        self.groups = tuple(groups)
        self.missing = list(dict.fromkeys(wanted))
        self.satisfied: list[str] = []
        self.roles: dict[str, object] = {}

    def done(self) -> bool:
        return not self.missing

    def add(self, binding: dict) -> None:
        for who in (self.subject, ALL_USERS, *self.groups):
            for role in binding.get(who, ()):
                if role in self.roles or role not in ROLES:
                    continue
                self.roles[role] = ROLES[role]
                for p in ROLES[role].permissions:
                    if p in self.missing:
                        self.missing.remove(p)
                        self.satisfied.append(p)
            if self.done():
                return

    def roles_for(self, rtype: str) -> list[str]:
        return sorted(r for r, d in self.roles.items() if rtype in d.returned_for)

    def permissions_for(self, rtype: str) -> list[str]:
        return [p for r in self.roles_for(rtype) for p in ROLES[r].permissions]


class Auth:
    """Auth state of one server. With no state file and no root token, auth is off."""

    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, STATE_FILE)
        self.lock = threading.RLock()
        self.state: dict = {"tokens": {}, "bindings": {}}
        if os.path.exists(self.path):
            try:
                with open(self.path) as f:
                    self.state = json.load(f)
                self.state["tokens"], self.state["bindings"]  # noqa: B018 - both must be there
            except (ValueError, KeyError, TypeError) as e:
                raise RuntimeError(
                    f"{self.path}: the auth state is damaged ({type(e).__name__}: {e}); restore it from a backup "
                    "(deleting it turns auth off until a root token is given again)"
                ) from None

    # -- state ---------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return bool(self.state["bindings"].get("CLUSTER:"))

    def _save(self) -> None:
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _insert_token(self, token: str, subject: str, ttl: float = 0) -> None:
        h = hash_token(token)
        if h in self.state["tokens"]:
            raise Unknown("cannot overwrite existing token with same hash")
        self.state["tokens"][h] = {"subject": subject, "expiration": time.time() + ttl if ttl > 0 else None}

    # -- activation ----------------------------------------------------------------------------
    def activate(self, root_token: str, projects: Iterable[str] = (), repos: Iterable[str] = ()) -> bool:
        """Turns auth on with `root_token` as pach:root's token, as pachd's Activate followed by
        PFS's ActivateAuth (existing projects and repos get bindings; everyone may write to the
        default project). Already on: the root token becomes `root_token` (as pachd's start with
        a root token in its environment). Answers whether auth was off before."""
        if not root_token:
            raise Unknown("the root token is empty")
        with self.lock:
            was_off = not self.active
            if was_off:
                self.state = {
                    "tokens": {},
                    "bindings": {
                        "CLUSTER:": {ROOT: ["clusterAdmin"], INTERNAL: ["clusterAdmin"], ALL_USERS: ["projectCreator"]}
                    },
                }
                for p in projects:
                    self.state["bindings"].setdefault(
                        resource_key("PROJECT", p), {ALL_USERS: ["projectWriter"]} if p == "default" else {}
                    )
                for r in repos:
                    self.state["bindings"].setdefault(resource_key("REPO", r), {})
            self.state["tokens"] = {h: t for h, t in self.state["tokens"].items() if t["subject"] != ROOT}
            self._insert_token(root_token, ROOT)
            self._save()
            return was_off

    def deactivate(self) -> None:
        with self.lock:
            self.state = {"tokens": {}, "bindings": {}}
            self._save()

    def require_active(self) -> None:
        if not self.active:
            raise Unimplemented(NOT_ACTIVATED)

    # -- who is calling ------------------------------------------------------------------------
    def who_am_i(self, token: Optional[str]) -> tuple[str, Optional[float]]:
        """(subject, expiration) of a token, refused as pachd refuses it."""
        self.require_active()
        if not token:
            raise Unauthenticated(NOT_SIGNED_IN)
        info = self.state["tokens"].get(hash_token(token))
        if info is None:
            raise Unauthenticated(BAD_TOKEN)
        if info["expiration"] is not None and time.time() > info["expiration"]:
            raise Internal(EXPIRED_TOKEN)
        return info["subject"], info["expiration"]

    def robot_token(self, robot: str, ttl: int = 0) -> str:
        name = robot[len("robot:") :] if robot.startswith("robot:") else robot
        if ":" in name:
            raise Unknown("robot names cannot contain colons (':')")
        token = secrets.token_hex(16)
        with self.lock:
            self._insert_token(token, "robot:" + name, ttl)
            self._save()
        return token

    def revoke(self, token: str) -> int:
        with self.lock:
            self.require_active()
            n = 1 if self.state["tokens"].pop(hash_token(token), None) else 0
            if n:
                self._save()
            return n

    # -- permissions ---------------------------------------------------------------------------
    def _binding(self, rtype: str, name: str) -> Optional[dict]:
        return self.state["bindings"].get(resource_key(rtype, name))

    def evaluate(self, subject: str, rtype: str, name: str, wanted: Iterable[str], all_levels=False) -> Evaluation:
        """pachd's evaluateRoleBinding: the cluster binding, then (repos) the project's, then the
        resource's own; a missing project or repo binding is an error as in pachd."""
        with self.lock:
            ev = Evaluation(subject, wanted, self.state.get("members", {}).get(subject, ()))
            ev.add(self.state["bindings"].get("CLUSTER:", {}))
            if (ev.done() and not all_levels) or rtype == "CLUSTER":
                return ev
            if rtype == "REPO":
                project = name.split("/", 1)[0]
                binding = self._binding("PROJECT", project)
                if binding is None:
                    raise Unknown(f"no role binding exists for PROJECT {project}")
                ev.add(binding)
                if ev.done() and not all_levels:
                    return ev
            binding = self._binding(rtype, name)
            if binding is None:
                raise Unknown(f"no role binding exists for {rtype} {name}")
            ev.add(binding)
        return ev

    def check(self, subject: Optional[str], rtype: str, name: str, *permissions: str) -> None:
        """Raises pachd's PERMISSION_DENIED unless `subject` holds every permission; nothing to
        check when auth is off (subject None)."""
        if subject is None:
            return
        if not self.evaluate(subject, rtype, name, permissions).done():
            raise not_authorized(subject, rtype, name, permissions)

    def allows(self, subject: Optional[str], rtype: str, name: str, *permissions: str) -> bool:
        try:
            self.check(subject, rtype, name, *permissions)
            return True
        except PermissionDenied:
            return False

    def permissions(self, subject: str, rtype: str, name: str) -> tuple[list[str], list[str]]:
        """(permissions, roles) of `subject` on a resource, as GetPermissions answers them."""
        ev = self.evaluate(subject, rtype, name, ALL_PERMISSIONS, all_levels=True)
        return ev.permissions_for(rtype), ev.roles_for(rtype)

    # -- role bindings -------------------------------------------------------------------------
    @staticmethod
    def check_principal(principal: str) -> None:
        if principal == ALL_USERS:
            return
        if ":" not in principal:
            raise Unknown("subject has no prefix, must be of the form <type>:<name>")
        prefix = principal[: principal.index(":") + 1]
        if prefix not in PREFIXES:
            raise Unknown(f"subject has unrecognized prefix: {prefix}")

    @staticmethod
    def check_roles(roles: Iterable[str]) -> None:
        for r in roles:
            if r not in ROLES:
                raise Unknown(f'unknown role "{r}"')

    def create_binding(self, rtype: str, name: str, principal: Optional[str], roles: list[str]) -> None:
        """A new resource's binding (its creator as owner); when auth is off, nothing."""
        with self.lock:
            if not self.active:
                return
            self.state["bindings"][resource_key(rtype, name)] = {principal: list(roles)} if principal else {}
            self._save()

    def ensure_binding(self, rtype: str, name: str, principal: Optional[str], roles: list[str]) -> None:
        """create_binding unless the resource has one (a pipeline's output repo at an update)."""
        with self.lock:
            if self.active and resource_key(rtype, name) not in self.state["bindings"]:
                self.state["bindings"][resource_key(rtype, name)] = {principal: list(roles)} if principal else {}
                self._save()

    def delete_binding(self, rtype: str, name: str) -> None:
        with self.lock:
            if self.state["bindings"].pop(resource_key(rtype, name), None) is not None:
                self._save()

    def modify_binding(self, caller: str, rtype: str, name: str, principal: str, roles: list[str]) -> None:
        self.require_active()
        self.check_principal(principal)
        if principal.startswith("pach:") and rtype == "CLUSTER":
            raise Unknown("cannot modify cluster role bindings for pach: users")
        needed = {
            "CLUSTER": "CLUSTER_MODIFY_BINDINGS",
            "PROJECT": "PROJECT_MODIFY_BINDINGS",
            "REPO": "REPO_MODIFY_BINDINGS",
        }
        if rtype not in needed:
            raise Unknown(f"unknown resource type {rtype}")
        self.check(caller, rtype, name, needed[rtype])
        self.check_roles(roles)
        with self.lock:
            binding = self._binding(rtype, name)
            if binding is None:
                raise Unknown(f"no role binding exists for {rtype} {name}")
            if roles:
                binding[principal] = list(dict.fromkeys(roles))
            else:
                binding.pop(principal, None)
            self._save()

    def get_binding(self, rtype: str, name: str) -> dict:
        self.require_active()
        with self.lock:
            return {k: list(v) for k, v in (self._binding(rtype, name) or {}).items()}

    # -- groups (pachd's members and groups collections) ---------------------------------------
    def groups_of(self, subject: str) -> list[str]:
        with self.lock:
            return sorted(self.state.get("members", {}).get(subject, ()))

    def users_of(self, group: str) -> list[str]:
        with self.lock:
            if group not in self.state.get("groups", {}):
                raise NotFound(f"{group} not found in groups")
            return sorted(self.state["groups"][group])

    def set_groups(self, user: str, groups: Iterable[str]) -> None:
        self.check_principal(user)
        with self.lock:
            members, by_group = self.state.setdefault("members", {}), self.state.setdefault("groups", {})
            for g in members.get(user, ()):
                if user in by_group.get(g, []):
                    by_group[g].remove(user)
            members[user] = sorted(set(groups))
            for g in members[user]:
                by_group.setdefault(g, [])
                if user not in by_group[g]:
                    by_group[g].append(user)
            self._save()

    def modify_members(self, group: str, add: Iterable[str], remove: Iterable[str]) -> None:
        add, remove = list(add), list(remove)
        for user in add + remove:
            self.check_principal(user)
        with self.lock:
            members, by_group = self.state.setdefault("members", {}), self.state.setdefault("groups", {})
            users = by_group.setdefault(group, [])
            for user in add:
                members[user] = sorted(set(members.get(user, [])) | {group})
                if user not in users:
                    users.append(user)
            for user in remove:
                members[user] = [g for g in members.get(user, []) if g != group]
                if user in users:
                    users.remove(user)
            self._save()

    def roles_for_permission(self, permission: str) -> list:
        return [r for r in ROLES.values() if permission in r.permissions]
