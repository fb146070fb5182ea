"""Predictions from Pachyderm: a Source's `predictions_from` branch (typically a pipeline's output)
holds `<path>.json` for the task imported from `<path>`: one prediction or a list, in Label
Studio's format (`result`, optional `score` and `model_version`). A Sync attaches them to the
Source's tasks as Label Studio predictions; no prediction file becomes a task.

- What is read: at a new commit of the branch, the files of every task of the Source (its
  predictions go beside the older ones, under that commit's model version); at the commit already
  applied, only those of the tasks this Sync created. Many files come from the mount server in one
  call (a glob of the commit), a few by name.
- Idempotent: a task never gets a second prediction of one model version, which is the file's
  `model_version`, else `<repo>@<commit id>`. The same commit synced again adds nothing.
- A file that is not JSON or does not fit the labeling config (Label Studio's own check,
  `LabelInterface.validate_prediction`) is named with the reason; the others go in.
- The project's model version (Settings > Model, which decides the pre-annotations labelers see)
  follows the newest predictions while it is empty or still the one this Source set; a version a
  person picked there stays.
"""

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F
from label_studio_sdk.label_interface import LabelInterface
from projects.models import Project
from tasks.models import Prediction, Task

from . import mount_client
from .cluster_checks import explain
from .mount_client import MountServerError

logger = logging.getLogger(__name__)

FEW = 1000  # up to this many files are read by name (a GetFile each); more in one glob of the commit
BATCH = 500  # tasks per query and per transaction (SQLite caps the parameters of one query)
GLOB_SPECIALS = set("*?[]{}!\\")


class BadFile(ValueError):
    """A prediction file that cannot go in: reported with the reason, skipped."""


@dataclass
class Outcome:
    source: str
    commit: str = ""
    files: int = 0
    added: int = 0
    tasks: int = 0
    skipped: int = 0
    versions: Counter = field(default_factory=Counter)
    project_version: str = ""
    errors: list = field(default_factory=list)

    def meta(self) -> dict:
        newest = self.versions.most_common(1)[0][0] if self.versions else None
        return {
            "from": self.source,
            "commit": self.commit,
            "files": self.files,
            "added": self.added,
            "tasks": self.tasks,
            "skipped": self.skipped,
            "model_version": newest,
            "project_model_version": self.project_version or None,
            "message": self.message(newest),
        }

    def message(self, newest) -> str:
        at = f"{self.source} at {self.commit[:12]}" if self.commit else self.source
        if not self.commit and self.errors:
            return f"predictions from {self.source} could not be read (View Logs)"
        text = f"{self.added} prediction(s) added to {self.tasks} task(s) from {at}"
        if newest:
            text += f", model version {newest}"
        if self.skipped:
            text += f"; {self.skipped} file(s) skipped (View Logs)"
        if self.project_version and newest and self.project_version != newest:
            text += f"; the project shows model version {self.project_version} (Settings > Model)"
        return text


def _glob(prefix: str) -> str:
    """The prediction files under the Source's prefix (a prefix with glob characters: all of them)."""
    if prefix and not GLOB_SPECIALS & set(prefix):
        return f"/{prefix}/**.json"
    return "/**.json"


def _batched(items, n=BATCH):
    items = list(items)
    for start in range(0, len(items), n):
        yield items[start : start + n]


def parse(path: str, text: str, interface: LabelInterface, default_version: str) -> list:
    """[(result, score, model_version)] of one file; BadFile says why it cannot go in."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadFile(f'prediction file "{path}" is not JSON ({exc}); skipped.') from None
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list) or not items or not all(isinstance(p, dict) for p in items):
        raise BadFile(
            f'prediction file "{path}" holds neither a prediction (an object with "result") '
            "nor a list of them; skipped."
        )
    out = []
    for i, prediction in enumerate(items):
        problems = interface.validate_prediction(prediction, return_errors=True)
        version = prediction.get("model_version")
        if version is not None and not (isinstance(version, str) and version.strip()):
            problems.append(f"model_version must be a non-empty text, not {json.dumps(version)[:80]}")
        if problems:
            which = f"prediction {i}" if len(items) > 1 else "its prediction"
            raise BadFile(
                f'prediction file "{path}": {which} does not fit the labeling config: {"; ".join(problems)}; skipped.'
            )
        score = prediction.get("score")
        out.append(
            (prediction["result"], None if score is None else float(score), (version or default_version).strip())
        )
    return out


class PredictionSync:
    def __init__(self, storage, created_keys):
        self.storage = storage
        self.created_keys = created_keys
        self.project_name, self.repo, self.branch = storage.predictions_branch()
        self.out = Outcome(source=f"{self.project_name}/{self.repo}@{self.branch}")
        self.limit = settings.PACHSTUDIO_MAX_JSON_MB * 1024 * 1024

    # --- which tasks, which files --------------------------------------------------------------
    def tasks_by_file(self, fresh: bool) -> dict:
        """{"<key>.json": (key, [(row_index, task id)])} of the tasks to look for predictions for."""
        links = self.storage.links.filter(object_exists=True)
        rows = []
        if fresh:
            rows = list(links.values_list("key", "row_index", "task_id"))
        else:
            for chunk in _batched(set(self.created_keys)):
                rows += links.filter(key__in=chunk).values_list("key", "row_index", "task_id")
        by_key = defaultdict(list)
        for key, row, task in rows:
            by_key[key].append((row, task))
        return {f"{key}.json": (key, tasks) for key, tasks in by_key.items()}

    def read(self, wanted: dict):
        """(path, text, None) or (path, None, why it cannot be read) of each wanted file the commit holds."""
        if len(wanted) <= FEW:
            texts = mount_client.read_files(self.project_name, self.repo, self.out.commit, sorted(wanted))
            for path, text in texts.items():
                if text is None:
                    continue
                if len(text) > self.limit and len(text.encode()) > self.limit:
                    yield path, None, self.too_big
                elif "\ufffd" in text:  # the route decodes with replacement characters
                    yield path, None, "is not UTF-8 text"
                else:
                    yield path, text, None
            return
        rows = mount_client.glob_files(
            self.project_name, self.repo, self.out.commit, _glob(self.storage.clean_prefix), self.limit
        )
        for row in rows:
            if row["path"] in wanted:
                problem = row["problem"] and (
                    self.too_big if row["data"] is None and row["size"] > self.limit else f"is {row['problem']}"
                )
                yield row["path"], row["data"], problem

    @property
    def too_big(self) -> str:
        return f"is bigger than the {settings.PACHSTUDIO_MAX_JSON_MB} MB a JSON file may have (PACHSTUDIO_MAX_JSON_MB)"

    # --- the work ------------------------------------------------------------------------------
    def run(self) -> Outcome:
        self.out.commit = mount_client.branch_head(self.project_name, self.repo, self.branch)
        fresh = self.out.commit != self.storage.predictions_commit
        wanted = self.tasks_by_file(fresh)
        project = self.storage.project
        interface = LabelInterface(project.label_config)
        default_version = f"{self.repo}@{self.out.commit}"
        found = []  # (task id, [(result, score, version)])
        for path, text, problem in self.read(wanted) if wanted else ():
            self.out.files += 1
            key, tasks = wanted[path]
            try:
                if problem:
                    raise BadFile(f'prediction file "{path}" {problem}; skipped.')
                if len(tasks) > 1:
                    raise BadFile(
                        f'prediction file "{path}": "{key}" holds {len(tasks)} tasks, so its predictions belong in '
                        'each task\'s own "predictions"; skipped.'
                    )
                found.append((tasks[0][1], parse(path, text, interface, default_version)))
            except BadFile as exc:
                self.out.skipped += 1
                self.out.errors.append(str(exc))
        self.add(project, found)
        self.choose_version(project)
        return self.out

    def existing(self, task_ids: list, versions: set) -> set:
        """(task id, model version) pairs already there: those are not added again."""
        pairs = set()
        for chunk in _batched(task_ids):
            rows = Prediction.objects.filter(task_id__in=chunk)
            if len(versions) <= 20:
                rows = rows.filter(model_version__in=versions)
            pairs.update(rows.values_list("task_id", "model_version"))
        return pairs

    def add(self, project, found: list):
        versions = {v for _, predictions in found for _, _, v in predictions}
        known = self.existing([task for task, _ in found], versions) if found else set()
        new = []
        for task, predictions in found:
            for result, score, version in predictions:
                if (task, version) not in known:
                    new.append((task, result, score, version))
        for batch in _batched(new):
            counts = Counter(task for task, _, _, _ in batch)
            with transaction.atomic():
                Prediction.objects.bulk_create(
                    [
                        Prediction(
                            task_id=task,
                            project_id=project.id,
                            result=Prediction.prepare_prediction_result(result, project),
                            score=score,
                            model_version=version,
                        )
                        for task, result, score, version in batch
                    ]
                )
                by_count = defaultdict(list)
                for task, n in counts.items():
                    by_count[n].append(task)
                for n, tasks in by_count.items():
                    Task.objects.filter(id__in=tasks).update(total_predictions=F("total_predictions") + n)
            self.out.tasks += len(counts)
        self.out.added = len(new)
        self.out.versions.update(version for _, _, _, version in new)

    def choose_version(self, project):
        """The newest version becomes the project's while nobody picked another one there."""
        current = Project.objects.filter(id=project.id).values_list("model_version", flat=True).first() or ""
        if self.out.versions and (not current or current == self.storage.predictions_version):
            current = self.out.versions.most_common(1)[0][0]
            Project.objects.filter(id=project.id).update(model_version=current)
            self.storage.predictions_version = current
        self.out.project_version = current


def sync_predictions(storage, created_keys) -> Outcome | None:
    """Attach the predictions of `predictions_from` (None when the Source has none). A failure to
    read them is reported, and the next Sync reads every task's file again (nothing is doubled)."""
    if not storage.predictions_from:
        return None
    work = PredictionSync(storage, created_keys)
    try:
        out = work.run()
        storage.predictions_commit = out.commit
    except MountServerError as exc:
        logger.warning("predictions of source %s not read: %s", storage.id, exc)
        work.out.errors.append(
            f"predictions from {work.out.source} could not be read ({explain(exc)}); the next Sync tries again."
        )
        out = work.out
        out.commit = ""
        storage.predictions_commit = None
    storage.save(update_fields=["predictions_commit", "predictions_version"])
    return out
