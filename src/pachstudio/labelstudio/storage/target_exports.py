"""Training-ready exports in the Sync's commit: Label Studio's own converter (COCO, YOLO, ...) run
over the project's annotations, written under `<prefix>/exports/<FORMAT>/` next to the label files
(`<FORMAT>/<split>/` when the Target has frozen splits: the converter run once per split).

Images are never copied or downloaded: a task from a Pachyderm Source enters the converter as
`/pfs/<repo>/<path>` (where a pipeline with that repo as input finds the file), and
`<prefix>/exports/manifest.json` lists every such file as `project/repo@commit:/path`.
The converter only keeps a path it can see on disk, so it is shown empty stand-ins under a
temporary folder whose name is then cut from its output.
"""

import json
import logging
import os
import shutil
import struct
import tempfile
import time
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from django.apps import apps
from django.conf import settings

logger = logging.getLogger(__name__)

EXPORTS = "exports"
MANIFEST = "manifest.json"
WRITERS = 8
# Formats that fetch the images into the export: refused, the export refers to them by path.
DOWNLOADING = {"COCO_WITH_IMAGES", "YOLO_WITH_IMAGES", "YOLO_OBB_WITH_IMAGES", "DOCLANG"}
NEEDS = {  # why a format is not offered, in the words of the converter's rules
    "COCO": "an Image labeled with RectangleLabels, PolygonLabels or KeyPointLabels",
    "YOLO": "an Image labeled with RectangleLabels, PolygonLabels or KeyPointLabels",
    "YOLO_OBB": "an Image labeled with RectangleLabels or PolygonLabels",
    "VOC": "an Image labeled with RectangleLabels",
    "CONLL2003": "a Text labeled with Labels",
    "BRUSH_TO_NUMPY": "an Image labeled with BrushLabels",
    "BRUSH_TO_PNG": "an Image labeled with BrushLabels",
    "BRUSH_TO_COCO": "an Image labeled with BrushLabels",
    "ASR_MANIFEST": "an Audio transcribed with a TextArea",
}


def converter(label_config):
    from label_studio_sdk.converter import Converter

    return Converter(config=label_config, project_dir=None, download_resources=False)


def all_formats() -> list:
    from label_studio_sdk.converter.converter import Format

    return [f.name for f in Format]


def offered(label_config) -> list:
    """What Label Studio's export dialog offers for this labeling config, less what downloads images."""
    return [f for f in converter(label_config).supported_formats if f not in DOWNLOADING]


def check_formats(value, label_config) -> list:
    """The chosen formats, upper-cased and de-duplicated; ValueError saying which one does not fit and why."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError('export formats: give a list of format names, e.g. ["COCO", "YOLO"]')
    names = []
    for raw in value:
        name = raw.strip().upper().replace("-", "_").replace(" ", "_")
        if name and name not in names:
            names.append(name)
    fits = offered(label_config)
    for name in names:
        if name not in all_formats():
            raise ValueError(
                f'export format "{name}" is not one of Label Studio\'s; for this labeling config choose among: '
                f"{', '.join(fits)}"
            )
        if name in DOWNLOADING:
            raise ValueError(
                f"export format {name} copies the images into the export; exports here refer to images by their "
                f"Pachyderm path and commit instead: choose among {', '.join(fits)}"
            )
        if name not in fits:
            schema = converter(label_config)
            if len(schema._data_keys) > 1:
                why = f"the config has several data fields ({', '.join(sorted(schema._data_keys))})"
            else:
                why = f"it needs {NEEDS.get(name, 'another kind of labeling config')}"
            raise ValueError(
                f"export format {name} does not fit this project's labeling config: {why}. "
                f"Formats that fit: {', '.join(fits)}"
            )
    return names


def _sources(storage, task_ids) -> dict:
    """task id -> (pachyderm project, repo, blob?) of the Pachyderm Source it came from."""
    SourceLink = apps.get_model(storage._meta.app_label, "PachydermImportStorageLink")
    out = {}
    for start in range(0, len(task_ids), 500):
        rows = SourceLink.objects.filter(task_id__in=task_ids[start : start + 500]).values_list(
            "task_id", "storage__pach_project", "storage__repo", "storage__use_blob_urls"
        )
        for task_id, project, repo, blob in rows:
            out[task_id] = (project or "default", repo, bool(blob))
    return out


def _tasks(storage) -> list:
    """The project's labeled tasks in Label Studio's export shape, with what the converter reads."""
    from tasks.models import Annotation, Task

    by_task = defaultdict(list)
    fields = ("id", "task_id", "result", "completed_by_id", "was_cancelled", "ground_truth")
    fields += ("created_at", "updated_at", "lead_time")
    for row in Annotation.objects.filter(project_id=storage.project_id).order_by("id").values_list(*fields):
        ann = dict(zip(fields, row))
        task_id = ann.pop("task_id")
        ann["completed_by"] = ann.pop("completed_by_id")
        for key in ("created_at", "updated_at"):
            ann[key] = ann[key].isoformat() if ann[key] else None
        by_task[task_id].append(ann)
    tasks = []
    for task_id, data in Task.objects.filter(project_id=storage.project_id).order_by("id").values_list("id", "data"):
        if task_id in by_task:
            tasks.append({"id": task_id, "data": dict(data or {}), "annotations": by_task[task_id]})
    return tasks


def _point_at_pfs(tasks, sources, data_keys, stand_ins: str):
    """Rewrite blob tasks' file URLs to `/pfs/<repo>/<path>` (below `stand_ins`, where an empty
    file stands for each), and name the undefined data field by the config's one data field.
    Returns the manifest's lists."""
    images, task_files, elsewhere = [], [], []
    made = set()
    single_key = data_keys[0] if len(data_keys) == 1 else None
    for task in tasks:
        data = task["data"]
        if single_key and settings.DATA_UNDEFINED_NAME in data and single_key not in data:
            data[single_key] = data.pop(settings.DATA_UNDEFINED_NAME)
        path, commit = data.get("pachyderm_path"), data.get("pachyderm_commit")
        source = sources.get(task["id"])
        if not (source and isinstance(path, str) and path):
            elsewhere.append(task["id"])
            continue
        project, repo, blob = source
        entry = {"task": task["id"], "project": project, "repo": repo, "path": path, "commit": commit}
        entry["uri"] = f"{project}/{repo}@{commit}:/{path.lstrip('/')}"
        if not blob:
            task_files.append(entry)
            continue
        ref = f"/pfs/{repo}/{path.lstrip('/')}"
        entry["file"] = ref
        images.append(entry)
        for key, value in list(data.items()):
            if isinstance(value, str) and "/data/pachyderm/" in value:
                data[key] = stand_ins + ref
        stand_in = stand_ins + ref
        folder = os.path.dirname(stand_in)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        with open(stand_in, "wb") as f:
            f.write(_stand_in_image(task))
    return images, task_files, elsewhere


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _stand_in_image(task) -> bytes:
    """A PNG header of the size the labels were drawn on (their original_width/height): the
    converter opens each image for its size, and an empty file makes it try every image format
    first. Empty when no result says the size (the converter then skips the size, as it would)."""
    for annotation in task["annotations"]:
        for result in annotation.get("result") or []:
            w, h = result.get("original_width"), result.get("original_height")
            if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
                header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
                return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"")
    return b""


def _files(folder: str) -> dict:
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(root, name)
            out[os.path.relpath(full, folder)] = full
    return out


def _convert(label_config, tasks, work: str, name: str, folder: str, stand_ins: str) -> dict:
    """One format of some tasks into `folder`: {path relative to it: local file}."""
    source_json = os.path.join(work, f"tasks-{os.path.basename(folder)}.json")
    with open(source_json, "w") as f:
        f.write(json.dumps(tasks, default=str))  # dumps: the C encoder; dump streams in Python
    converter(label_config).convert(source_json, folder, name, is_dir=False)
    produced = _files(folder)
    for full in produced.values():
        _cut(full, stand_ins)
    return produced


def build(storage, formats, parent_commit: str, work: str, health=None) -> dict:
    """Every format's files under `work/out/<FORMAT>/` (`<FORMAT>/<split>/` with splits) and the
    manifest; {relative path: local file}."""
    project = storage.project
    label_config = project.get_parsed_config()
    conv = converter(label_config)
    tasks = _tasks(storage)
    sources = _sources(storage, [t["id"] for t in tasks])
    splitter = storage.splitter
    split_of = {t["id"]: splitter.of(t["id"], t["data"]) for t in tasks} if splitter else {}
    stand_ins = os.path.join(work, "stand-ins")
    images, task_files, elsewhere = _point_at_pfs(tasks, sources, conv._data_keys, stand_ins)
    for entry in images + task_files:
        if splitter:
            entry["split"] = split_of[entry["task"]]
    out = os.path.join(work, "out")
    files = {}
    counts = {}
    for name in formats:
        if splitter:
            counts[name] = {}
            for part in splitter.names:
                chosen = [t for t in tasks if split_of[t["id"]] == part]
                produced = _convert(label_config, chosen, work, name, os.path.join(out, name, part), stand_ins)
                files.update((f"{name}/{part}/{rel}", full) for rel, full in produced.items())
                counts[name][part] = len(produced)
        else:
            produced = _convert(label_config, tasks, work, name, os.path.join(out, name), stand_ins)
            files.update((f"{name}/{rel}", full) for rel, full in produced.items())
            counts[name] = len(produced)
    manifest = {
        "label_studio": {"project": project.id, "title": project.title, "target_storage": storage.id},
        "version": {
            "parent_commit": parent_commit or None,
            "labels": "the label files of the commit holding this manifest",
        },
        "formats": {name: _format_entry(name, counts[name], splitter) for name in formats},
        "annotations": sum(len(t["annotations"]) for t in tasks),
        "tasks": len(tasks),
        "images": images,
        "task_files": task_files,
        "tasks_from_elsewhere": elsewhere,
    }
    if splitter:
        by_split = {part: [] for part in splitter.names}
        for t in tasks:
            by_split[split_of[t["id"]]].append(t["id"])
        counted = {part: len(ids) for part, ids in by_split.items()}
        manifest["splits"] = {**splitter.describe(), "counts": counted, "tasks": by_split}
    if health is not None:
        manifest["health"] = health
    path = os.path.join(work, MANIFEST)
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
    files[MANIFEST] = path
    return files


def _format_entry(name: str, count, splitter) -> dict:
    if splitter:
        return {
            "folder": f"{EXPORTS}/{name}",
            "splits": {part: {"folder": f"{EXPORTS}/{name}/{part}", "files": count[part]} for part in splitter.names},
            "files": sum(count.values()),
        }
    return {"folder": f"{EXPORTS}/{name}", "files": count}


def _cut(path: str, stand_ins: str):
    """Drop the stand-ins' folder from a text output, so it names `/pfs/<repo>/<path>`."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (UnicodeDecodeError, OSError):
        return
    cut = text.replace(stand_ins, "").replace(stand_ins.replace("/", "\\/"), "")
    if cut != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(cut)


def write_exports(storage, formats, parent_commit: str, health=None) -> dict:
    """Build in a temporary folder (a failing format leaves the mount untouched), then replace
    `<prefix>/exports/` in the read-write mount with it. Returns {format: files} and the manifest."""
    folder = storage.local_path(f"{storage.clean_prefix}/{EXPORTS}" if storage.clean_prefix else EXPORTS)
    work = tempfile.mkdtemp(prefix="pachstudio-export-")
    started = time.perf_counter()
    quiet = logging.getLogger("label_studio_sdk.converter")
    level = quiet.level
    try:
        # it logs a traceback, at INFO, for every stand-in it cannot open as an image
        quiet.setLevel(max(level, logging.WARNING))
        try:
            files = build(storage, formats, parent_commit, work, health)
        finally:
            quiet.setLevel(level)
        built = time.perf_counter()
        old = _files(folder) if os.path.isdir(folder) else {}
        for rel, full in old.items():
            if rel not in files:
                os.remove(full)
        for parent in {os.path.dirname(os.path.join(folder, rel)) for rel in files}:
            os.makedirs(parent, exist_ok=True)

        def copy(item):
            rel, local = item
            shutil.copyfile(local, os.path.join(folder, rel))

        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            for _ in pool.map(copy, files.items()):
                pass
        done = time.perf_counter()
        return {
            "files": len(files),
            "removed": len([r for r in old if r not in files]),
            "seconds": {"build": round(built - started, 2), "write": round(done - built, 2)},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
