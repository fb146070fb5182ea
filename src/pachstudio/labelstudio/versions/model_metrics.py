"""The model metrics of a Target's versions, for the Versions page and Compare: what the pipeline
jobs each version started wrote to `metrics.json`, from the mount server in one call per page.

A failure of that call (the mount server or the cluster down) is said on the page and breaks
nothing else: the versions themselves still list.
"""

from .. import mount_client
from ..mount_client import MountServerError


def _summary(commit_answer) -> dict:
    """One version's jobs and metrics in the versions API's shape."""
    jobs = commit_answer["jobs"] if commit_answer else []
    metrics, unreadable, running, failed, outputs = {}, [], [], [], []
    for job in jobs:
        pipeline = job["pipeline"]
        if job["metrics"] == "ok":
            metrics[pipeline] = job["values"]
        elif job["metrics"] == "unreadable":
            unreadable.append({"pipeline": pipeline, "path": job["path"], "reason": job["problem"]})
        if not job["ended"]:
            running.append(pipeline)
        elif job["state"] != "JOB_SUCCESS":
            failed.append({"pipeline": pipeline, "state": job["state"], "reason": job["reason"]})
        outputs.append(
            {
                "pipeline": pipeline,
                "job": job["id"],
                "state": job["state"],
                "output_commit": job["output_commit"],
                "metrics": job["metrics"],
                "tags": job["tags"],
            }
        )
    state = "none" if not jobs else "running" if running else "ended"
    return {
        "jobs": {"state": state, "running": sorted(running), "failed": failed, "outputs": outputs},
        "metrics": metrics,
        "metrics_unreadable": unreadable,
    }


def fetch(storage, commits) -> tuple[dict, dict]:
    """({"state", "message", "names"} of the pipelines, {commit: summary})."""
    if not commits:
        return {"state": "none", "message": "no versions", "names": []}, {}
    try:
        answer = mount_client.version_metrics(storage.project_name, storage.repo, storage.ref, list(commits))
    except MountServerError as exc:
        why = f"the jobs and metrics cannot be read now: {exc}"
        return {"state": "error", "message": why, "names": []}, {}
    by_commit = {c["commit"]: c for c in answer["commits"]}
    pipelines = {"state": answer["state"], "message": answer["message"], "names": answer["pipelines"]}
    return pipelines, {c: _summary(by_commit.get(c)) for c in commits}


def add_to(storage, versions: list) -> dict:
    """Each version gains `jobs`, `metrics` and `metrics_unreadable`; answers the pipelines' state."""
    pipelines, summaries = fetch(storage, [v["commit"] for v in versions])
    for version in versions:
        summary = summaries.get(version["commit"]) or _summary(None)
        if pipelines["state"] in ("hidden", "error"):
            summary["jobs"]["state"] = pipelines["state"]
        version.update(summary)
    return pipelines


def columns(versions: list) -> list:
    """[{"pipeline", "key"}] of every metric on the page, sorted: the page's metric columns."""
    found = {(p, k) for v in versions for p, values in v.get("metrics", {}).items() for k in values}
    return [{"pipeline": p, "key": k} for p, k in sorted(found)]


def changes(storage, old: str, new: str) -> dict:
    """Each metric's change between two versions: {"state", "message", "metrics": {pipeline:
    {key: {"from", "to", "change"}}}}; a side without the metric has null there (and no change)."""
    pipelines, summaries = fetch(storage, [old, new])
    before, after = (summaries.get(c, {}).get("metrics", {}) for c in (old, new))
    out = {}
    for pipeline in sorted(set(before) | set(after)):
        a, b = before.get(pipeline, {}), after.get(pipeline, {})
        out[pipeline] = {
            key: {
                "from": a.get(key),
                "to": b.get(key),
                "change": round(b[key] - a[key], 12) if key in a and key in b else None,
            }
            for key in sorted(set(a) | set(b))
        }
    running = [c for c in (old, new) if summaries.get(c, {}).get("jobs", {}).get("state") == "running"]
    return {"state": pipelines["state"], "message": pipelines["message"], "running": running, "metrics": out}
