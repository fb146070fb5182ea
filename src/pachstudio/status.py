"""`pachstudio status`: what the mount server says about itself, the cluster and the mounts.

Reads the mount server's `GET /health`, `/config` and `/mounts` (docs/INTERFACES.md) at
`PACHSTUDIO_MOUNT_API` (default http://127.0.0.1:9002; `unix:/path` for a socket) and prints a
short summary, or the three answers as JSON with `--json`. Exit 1 when the mount server does not
answer. Made for `docker exec label-studio pachstudio status` (the image has no curl).
"""

import argparse
import json
import os
import sys

import httpx

DEFAULT_API = "http://127.0.0.1:9002"


def _client(api: str, timeout: float) -> httpx.Client:
    if api.startswith("unix:"):
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=api[len("unix:") :]), base_url="http://mount-server", timeout=timeout
        )
    return httpx.Client(base_url=api, timeout=timeout)


def fetch(api: str, timeout: float) -> dict:
    """{"health": ..., "config": ..., "mounts": ...}: the mount server's answers. Raises
    httpx.HTTPError when it cannot be reached or answers with an error."""
    out = {}
    with _client(api, timeout) as client:
        for name in ("health", "config", "mounts"):
            response = client.get("/" + name)
            response.raise_for_status()
            out[name] = response.json()
    return out


CLUSTER = {
    "AUTH_DISABLED": "answers (auth off)",
    "AUTH_ENABLED": "answers (auth on)",
    "INVALID": "NOT ANSWERING or not configured",
}


def summary(api: str, answers: dict) -> str:
    config, mounts = answers["config"], answers["mounts"]
    status = config.get("cluster_status", "")
    lines = [
        f"mount server   {api}: {answers['health'].get('status', '?')}",
        f"cluster        {config.get('pachd_address') or '(none configured)'}: {CLUSTER.get(status, status)}",
    ]
    if config.get("cluster_error"):
        lines.append(f"               {config['cluster_error']}")
    lines.append(f"project        {config.get('project', '')}")
    mounted = mounts.get("mounted", [])
    # remembered mounts that could not mount again: "failed" (pachctl's shape, where "unmounted"
    # lists every repo), or the MountStates of "unmounted" in the older shape
    failed = mounts["failed"] if "failed" in mounts else [m for m in mounts.get("unmounted", []) if "state" in m]
    lines.append(f"mounts         {len(mounted)} mounted, {len(failed)} failed")
    for m in mounted + failed:
        commit = (m.get("commit") or "")[:12]
        behind = m.get("how_many_commits_behind") or 0
        line = (
            f"  {m.get('name')}: {m.get('project')}/{m.get('repo')}@{m.get('branch') or commit} "
            f"{m.get('mode')} {m.get('state')}"
        )
        if commit and m.get("branch"):
            line += f" at commit {commit}"
        if behind:
            line += f", {behind} commit{'s' if behind != 1 else ''} behind the branch"
        if m.get("status"):
            line += f": {m['status']}"
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pachstudio status", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--api",
        default=os.environ.get("PACHSTUDIO_MOUNT_API") or DEFAULT_API,
        help="the mount server's address (default $PACHSTUDIO_MOUNT_API, else %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the raw answers as one JSON object")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for each answer")
    args = parser.parse_args(argv)
    try:
        answers = fetch(args.api, args.timeout)
    except httpx.HTTPStatusError as e:
        print(
            f"pachstudio status: the mount server at {args.api} answered {e.response.status_code} "
            f"to {e.request.url.path}: {e.response.text[:300]}",
            file=sys.stderr,
        )
        return 1
    except httpx.HTTPError as e:
        print(
            f"pachstudio status: the mount server does not answer at {args.api} "
            f"({e.__class__.__name__}: {e}). Is it running? In the appliance: "
            f"`supervisorctl -c /etc/pachstudio/supervisord.conf status`; its log is in `docker logs`.",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(answers, indent=2) if args.json else summary(args.api, answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
