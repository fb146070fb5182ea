"""Which fields of a pipeline spec the embedded server carries out, which it refuses and why, and
the values of those it carries out (durations, memory and CPU quantities) in plain numbers.

A field pachd would act on and this server would not is refused at CreatePipeline with its name
and the reason, never accepted and left without effect: a user relying on it must know. Unknown
fields are refused too, as pachd's JSON parser does. Everything here works on a spec normalized
to snake_case keys (`pipelines.normalize`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from typing import Optional

from pachyderm_sdk.api import pps

from ..errors import InvalidArgument

# path in the spec -> why this server does not carry it out
REFUSED = {
    "egress": "it sends nothing out of the appliance",
    "s3_out": "there is no S3 gateway here",
    "service": "it runs no long-lived service containers",
    "spout": "it runs no long-lived spout containers",
    "sidecar_resource_limits": "there is no storage sidecar here: the server itself moves each datum's files",
    "sidecar_resource_requests": "there is no storage sidecar here: the server itself moves each datum's files",
    "resource_limits.gpu": "this server schedules no GPUs",
    "resource_requests.gpu": "this server schedules no GPUs",
    "resource_limits.disk": "a datum's disk space is not limited here (only the size of each file it writes)",
    "resource_requests.disk": "a datum's disk space is not reserved here",
    "datum_set_spec": "datums are not grouped into sets here: each runs on its own",
    "scheduling_spec": "there is no Kubernetes here: datums run as processes of the appliance",
    "pod_spec": "there is no Kubernetes here: datums run as processes of the appliance",
    "pod_patch": "there is no Kubernetes here: datums run as processes of the appliance",
    "tolerations": "there is no Kubernetes here: datums run as processes of the appliance",
    "metadata": "it sets Kubernetes annotations and labels of worker pods, and there are no pods here",
    "spec_commit": "pachd sets it itself when it restores a pipeline",
    "determined": "there is no Determined integration here",
    "maximum_expected_uptime": "there are no long-lived workers here to restart",
    "transform.secrets": (
        "this server keeps no Kubernetes secrets to read them from; pass the value in transform.env, "
        "or as a file of an input repo"
    ),
    "transform.image_pull_secrets": "images are not pulled here: the image is only recorded",
    "transform.dockerfile": "images are not built here: the image is only recorded",
    "transform.debug": "there is no worker debug logging here: the job log always says what the server does",
    "transform.user": (
        "this server chooses who a datum runs as (a user of its own that owns no file: see the pipeline's "
        "worker_rc) and cannot run it as a user of the image"
    ),
    "transform.memory_volume": "a datum's /pfs is on the appliance's disk and cannot be put in memory here",
    "transform.datum_batching": "datum batching (user code asking for each next datum) is not supported here",
    "input.pfs.repo_type": "only user repos can be inputs here",
    "input.pfs.s3": "there is no S3 gateway here",
    "input.pfs.trigger": "branch triggers are not supported here",
    "input.pfs.propagation_spec": "propagation specs are not supported here",
    "input.pfs.reference": "reference inputs are not supported here",
    "input.pfs.group_by": "group inputs are not supported here (pfs, cross, union and join are)",
}

FLAGS = ("update", "reprocess", "dry_run")  # request flags that may come inside a JSON spec


def refuse(path: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid pipeline spec: {path} is not supported by this server: {why}")


def _message_fields(cls) -> dict:
    """field name -> its type, for a message class of the SDK (public dataclass fields only)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if not f.name.startswith("_")}


def _message_class(tp):
    """The message class a field holds (itself, or the element of a list), else None."""
    if typing.get_origin(tp) in (list, typing.List):
        tp = typing.get_args(tp)[0]
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _generic(path: str) -> str:
    """`input.cross[1].pfs.s3` -> `input.pfs.s3`: REFUSED names an input field wherever it is."""
    path = re.sub(r"\[\d+\]", "", path)
    if path.startswith("input."):
        return "input." + path.split(".")[-2] + "." + path.split(".")[-1] if path.count(".") >= 2 else path
    return path


def check_fields(spec: dict, cls=pps.CreatePipelineRequest, prefix: str = "") -> None:
    """InvalidArgument for the first field (depth first, in the spec's order) that pachd does not
    know, or that this server does not carry out."""
    known = _message_fields(cls)
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if key not in known:
            raise InvalidArgument(f'invalid pipeline spec: unknown field "{path}"')
        if _empty(value):
            continue
        generic = _generic(path)
        if generic in REFUSED:
            raise refuse(path, REFUSED[generic])
        inner = _message_class(known[key])
        if inner is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    check_fields(item, inner, f"{path}[{i}].")
        elif isinstance(value, dict):
            check_fields(value, inner, f"{path}.")


def _empty(value) -> bool:
    """What proto3 treats as unset: false, 0, "", [], {} and null (a JSON spec may spell them out)."""
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


# -- values of the fields carried out -----------------------------------------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)s$")


def duration(spec: dict, key: str) -> Optional[float]:
    """A proto JSON Duration ("60s", "1.5s") in seconds; None when unset."""
    value = spec.get(key)
    if _empty(value):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise InvalidArgument(f'invalid pipeline spec: {key} {value!r} needs a unit: write it as "{value}s"')
    m = _DURATION.match(str(value).strip())
    if not m:
        raise InvalidArgument(
            f'invalid pipeline spec: {key} "{value}" is not a duration: write it in seconds with an "s", as "60s"'
        )
    seconds = float(m.group(1))
    if seconds <= 0:
        raise InvalidArgument(f'invalid pipeline spec: {key} "{value}" must be more than 0s')
    return seconds


_QUANTITY = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(?:[eE](\d+))?(Ki|Mi|Gi|Ti|Pi|Ei|k|K|M|G|T|P|E)?$")
_UNITS = {
    None: 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "Pi": 1 << 50,
    "Ei": 1 << 60,
}


def memory_bytes(value, path: str) -> Optional[int]:
    """A Kubernetes memory quantity ("512Mi", "2G", "1e9", "1048576") in bytes; None when unset."""
    if _empty(value):
        return None
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise InvalidArgument(
            f'invalid pipeline spec: {path} "{value}" is not a memory quantity: write bytes with an optional '
            'suffix, as "512Mi" or "2G"'
        )
    number = float(m.group(1)) * (10 ** int(m.group(2)) if m.group(2) else 1)
    size = int(number * _UNITS[m.group(3)])
    if size < 1 << 20:
        raise InvalidArgument(f'invalid pipeline spec: {path} "{value}" is less than 1Mi: no program starts in it')
    return size


def cpus(value, path: str) -> Optional[float]:
    """A CPU count (cores, fractions allowed); None when unset."""
    if _empty(value):
        return None
    try:
        n = float(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid pipeline spec: {path} {value!r} is not a number of CPUs") from None
    if not math.isfinite(n) or n < 0:
        raise InvalidArgument(f"invalid pipeline spec: {path} {value!r} is not a number of CPUs")
    return n or None


def int_list(value, path: str) -> list[int]:
    """`accept_return_code`: int64s, which proto JSON may also write as strings."""
    if _empty(value):
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"invalid pipeline spec: {path} must be a list of exit codes")
    try:
        return [int(v) for v in value if not isinstance(v, bool)]
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid pipeline spec: {path} {value!r} must be a list of exit codes") from None


def str_list(value, path: str) -> list[str]:
    if _empty(value):
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid pipeline spec: {path} must be a list of strings")
    return value


def env(value) -> dict[str, str]:
    """`transform.env`: names a process can have (no "=", no NUL, not empty), values as strings."""
    if _empty(value):
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument("invalid pipeline spec: transform.env must be an object of names and values")
    out = {}
    for k, v in value.items():
        if not k or "=" in k or "\0" in k or "\0" in str(v):
            raise InvalidArgument(f"invalid pipeline spec: transform.env name {k!r} cannot be an environment variable")
        out[k] = str(v)
    return out


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a checked spec asks of each datum's run, in plain numbers."""

    datum_timeout: Optional[float]  # seconds of wall-clock time per try, None: none
    job_timeout: Optional[float]  # seconds from the job's start, None: none
    parallelism: int  # datums of a job at once asked for (0: as many as the server allows)
    memory_limit: Optional[int]  # bytes of address space, None: the server's default
    cpu_limit: Optional[float]  # cores
    cpu_request: Optional[float]
    memory_request: Optional[int]
    accept_return_code: tuple[int, ...]
    err_cmd: tuple[str, ...]
    err_stdin: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    working_dir: str
    every_job: bool  # reprocess_spec "every_job": no datum is skipped


def settings(spec: dict) -> RunSettings:
    """The run settings of a normalized spec; InvalidArgument names the first bad value."""
    transform = spec.get("transform") or {}
    limits = spec.get("resource_limits") or {}
    requests = spec.get("resource_requests") or {}
    parallelism = (spec.get("parallelism_spec") or {}).get("constant") or 0
    try:
        parallelism = int(parallelism)
    except (TypeError, ValueError):
        parallelism = -1
    if parallelism < 0:
        raise InvalidArgument("invalid pipeline spec: parallelism_spec.constant must be a whole number of workers")
    working_dir = transform.get("working_dir") or ""
    if working_dir and not working_dir.startswith("/"):
        raise InvalidArgument(
            f"invalid pipeline spec: transform.working_dir {working_dir!r} must be an absolute path, as /pfs/in"
        )
    return RunSettings(
        datum_timeout=duration(spec, "datum_timeout"),
        job_timeout=duration(spec, "job_timeout"),
        parallelism=parallelism,
        memory_limit=memory_bytes(limits.get("memory"), "resource_limits.memory"),
        cpu_limit=cpus(limits.get("cpu"), "resource_limits.cpu"),
        cpu_request=cpus(requests.get("cpu"), "resource_requests.cpu"),
        memory_request=memory_bytes(requests.get("memory"), "resource_requests.memory"),
        accept_return_code=tuple(int_list(transform.get("accept_return_code"), "transform.accept_return_code")),
        err_cmd=tuple(str_list(transform.get("err_cmd"), "transform.err_cmd")),
        err_stdin=tuple(str_list(transform.get("err_stdin"), "transform.err_stdin")),
        env=tuple(env(transform.get("env")).items()),
        working_dir=working_dir,
        every_job=spec.get("reprocess_spec") == "every_job",
    )


def stored_settings(spec: dict) -> RunSettings:
    """The settings of a stored spec, for showing it: one an older version of this server accepted
    with a value this one refuses reads as the defaults (its jobs fail, naming the value)."""
    try:
        return settings(spec)
    except InvalidArgument:
        return settings({})
