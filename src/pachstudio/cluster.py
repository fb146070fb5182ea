"""Where the Pachyderm cluster is: the one place that reads pachctl's config and environment.

Precedence follows pachctl: an explicit address, else `PACHD_ADDRESS`, else the active context
(or `PACH_CONTEXT`) of `PACH_CONFIG` / `/pachctl/config.json` / `~/.pachyderm/config.json`.
The token and CAs still come from the context when the address is overridden. The SDK's own
parser raises TypeError on keys it does not know, so this reader is our own and tolerant.

`python -m pachstudio.cluster --check` tells the container entrypoint what it found.
"""

import argparse
import base64
import binascii
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Mapping, Optional
from urllib.parse import urlparse

DEFAULT_PORT = 30650
SCHEMES = ("grpc", "grpcs", "http", "https")


class ConfigError(Exception):
    """The cluster config cannot be used; the message names the file and the problem."""


@dataclass
class ClusterConfig:
    address: str  # normalised: scheme://host:port
    project: str = "default"
    token: Optional[str] = field(default=None, repr=False)  # never printed
    server_cas: Optional[bytes] = field(default=None, repr=False)
    source: str = ""  # where the address came from, for messages

    @property
    def tls(self) -> bool:
        return urlparse(self.address).scheme in ("grpcs", "https") or self.server_cas is not None

    def client(self):
        """A pachyderm-sdk Client; no RPC is made until the first call."""
        from pachyderm_sdk import Client

        return Client.from_pachd_address(self.address, auth_token=self.token or None, root_certs=self.server_cas)


def normalize_address(address: str, where: str) -> str:
    """`host`, `host:port` and `scheme://host[:port]` all become `scheme://host:port`."""
    if not isinstance(address, str) or not address.strip():
        raise ConfigError(f"{where}: pachd address is empty")
    raw = address.strip()
    text = raw if "://" in raw else "grpc://" + raw
    u = urlparse(text)
    if u.scheme not in SCHEMES:
        raise ConfigError(
            f"{where}: pachd address {raw!r} has scheme {u.scheme!r}; "
            f"use one of {', '.join(s + '://' for s in SCHEMES)}"
        )
    try:
        port = u.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"{where}: pachd address {raw!r} has an invalid port") from None
    if not u.hostname or (u.path not in ("", "/")) or u.query or u.username or u.password:
        raise ConfigError(f"{where}: pachd address {raw!r} is not of the form grpc://host:port")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{u.scheme}://{host}:{port}"


def config_path(env: Mapping[str, str]) -> Optional[str]:
    """The config file pachctl would read, or None when there is none at all."""
    if env.get("PACH_CONFIG"):
        return env["PACH_CONFIG"]
    candidates = ["/pachctl/config.json"]
    home = env.get("HOME") or os.path.expanduser("~")
    candidates.append(os.path.join(home, ".pachyderm", "config.json"))
    return next((p for p in candidates if os.path.exists(p)), None)


def _context(path: str, env: Mapping[str, str]) -> Optional[dict]:
    """The chosen context of a config file, or None when it defines no context at all."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (named by PACH_CONFIG)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read: {e.strerror}") from None
    try:
        doc = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object")
    v2 = doc.get("v2")
    if v2 is None:
        return None
    if not isinstance(v2, dict):
        raise ConfigError(f'{path}: "v2" must be an object')
    contexts = v2.get("contexts") or {}
    if not isinstance(contexts, dict):
        raise ConfigError(f'{path}: "v2.contexts" must be an object')
    name = env.get("PACH_CONTEXT") or v2.get("active_context")
    if not name:
        if contexts:
            raise ConfigError(
                f"{path}: no active context (set v2.active_context or PACH_CONTEXT; "
                f"contexts: {', '.join(sorted(contexts))})"
            )
        return None
    if not isinstance(name, str) or name not in contexts:
        where = "PACH_CONTEXT" if env.get("PACH_CONTEXT") else "v2.active_context"
        raise ConfigError(
            f"{path}: context {name!r} ({where}) is not among v2.contexts ({', '.join(sorted(contexts)) or 'none'})"
        )
    ctx = contexts[name]
    if not isinstance(ctx, dict):
        raise ConfigError(f"{path}: context {name!r} must be an object")
    return {"name": name, **ctx}


def _context_config(path: str, ctx: dict) -> ClusterConfig:
    where = f"{path} (context {ctx['name']!r})"
    for key in ("pachd_address", "session_token", "server_cas", "project"):
        if ctx.get(key) is not None and not isinstance(ctx[key], str):
            raise ConfigError(f"{where}: {key} must be a string")
    address = ctx.get("pachd_address")
    if not address:
        forwarders = ctx.get("port_forwarders") or {}
        port = forwarders.get("pachd", DEFAULT_PORT) if isinstance(forwarders, dict) else None
        if not isinstance(port, int):
            raise ConfigError(f"{where}: port_forwarders.pachd must be a number")
        address = f"grpc://localhost:{port}"
    cas = None
    if ctx.get("server_cas"):
        try:
            cas = base64.b64decode(ctx["server_cas"], validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                f"{where}: server_cas is not base64 (it holds the base64 of the PEM certificates)"
            ) from None
        if b"-----BEGIN CERTIFICATE-----" not in cas:
            raise ConfigError(
                f"{where}: server_cas is base64 but holds no PEM certificate "
                "(-----BEGIN CERTIFICATE-----); it must be the base64 of the "
                "cluster's CA certificates in PEM form"
            )
    return ClusterConfig(
        address=normalize_address(address, where),
        project=ctx.get("project") or "default",
        token=ctx.get("session_token") or None,
        server_cas=cas,
        source=where,
    )


def discover(pachd_address: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> Optional[ClusterConfig]:
    """The configured cluster, None when nothing configures one; ConfigError when malformed."""
    env = os.environ if env is None else env
    path = config_path(env)
    cfg = None
    if path is not None:
        ctx = _context(path, env)
        if ctx is not None:
            cfg = _context_config(path, ctx)
    for value, where in ((pachd_address, "--pachd-address"), (env.get("PACHD_ADDRESS"), "PACHD_ADDRESS")):
        if value:
            address = normalize_address(value, where)
            if cfg is None:
                return ClusterConfig(address=address, source=where)
            cfg.address, cfg.source = address, where
            return cfg
    return cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pachstudio.cluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="print `remote ADDRESS` or `none`; exit 1 on a malformed config"
    )
    parser.add_argument("--pachd-address")
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 2
    try:
        cfg = discover(args.pachd_address)
    except ConfigError as e:
        print(f"cluster config error: {e}", file=sys.stderr)
        return 1
    print("none" if cfg is None else f"remote {cfg.address}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def save_session_token(token: Optional[str], env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Writes `token` (None: removes it) as `session_token` of the active context of the config
    file pachctl would read, as `pachctl auth login` does; the path written, or None when there is
    no such file or context. The file is rewritten in place (it may be a bind-mounted file) and
    keeps every other key. An OSError (e.g. a read-only file) is the caller's to report."""
    env = os.environ if env is None else env
    path = config_path(env)
    if path is None:
        return None
    ctx = _context(path, env)
    if ctx is None:
        return None
    with open(path, "r+") as f:
        doc = json.load(f)
        context = doc["v2"]["contexts"][ctx["name"]]
        if token:
            context["session_token"] = token
        else:
            context.pop("session_token", None)
        f.seek(0)
        json.dump(doc, f, indent=2)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())
    return path
