"""Predictions from Pachyderm: a Source's `predictions_from` branch (typically a pipeline's output)
holds `<path>.json` for the task imported from `<path>`: one prediction or a list, in Label
Studio's format (`result`, optional `score` and `model_version`). A Sync attaches them to the
Source's tasks as Label Studio predictions; no prediction file becomes a task.

- What is read: at a new commit of the branch, the files of every task of the Source (its
  predictions go beside the older ones, under that commit's model version), in one call to the
  mount server (a glob of the commit) that a thread makes while the Sync makes the tasks; it only
  waits for the answer's bytes: parsing there too made the tasks slower than it saved (the GIL).
  At the commit already applied, only the files of the tasks this Sync created, by name when few.
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
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from label_studio_sdk.label_interface import LabelInterface
from projects.models import Project
from tasks.models import Prediction, Task

from .. import mount_client
from ..mount_client import MountServerError
from .cluster_checks import explain

logger = logging.getLogger(__name__)

FEW = 1000  # up to this many files are read by name (a GetFile each); more in one glob of the commit
BATCH = 500  # tasks per query (SQLite caps the parameters of one query)
WRITE_BATCH = 2000  # predictions per transaction
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
    seconds: dict = field(default_factory=dict)  # per phase: where a slow Sync spent its time

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
            "seconds": self.seconds,
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


class Checker:
    """Label Studio's own check of a prediction against the labeling config
    (`LabelInterface.validate_prediction`), its verdict on a result remembered for the Sync: a
    classifier's thousands of predictions hold a handful of distinct results, and the check costs
    eight times the JSON parse. The score is checked each time."""

    def __init__(self, label_config: str):
        self.interface = LabelInterface(label_config)
        self.verdicts = {}

    def problems(self, prediction: dict) -> list:
        if "result" not in prediction:
            return self.interface.validate_prediction(prediction, return_errors=True)
        key = json.dumps(prediction["result"], sort_keys=True)
        if key not in self.verdicts:
            self.verdicts[key] = self.interface.validate_prediction(
                {"result": prediction["result"]}, return_errors=True
            )
        problems = list(self.verdicts[key])
        if "score" in prediction:
            problems += self.interface.validate_prediction({"result": [], "score": prediction["score"]}, True)
        return problems


def parse(path: str, text: str, checker: Checker, default_version: str) -> list:
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
        problems = checker.problems(prediction)
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


def insert_predictions(project_id: int, rows: list):
    """(task id, result, score, model version) rows as Prediction rows, as `bulk_create` would
    write them (each field's default, `created_at`/`updated_at` now), but built from the model's
    field list (Django's Model._meta API) without a model instance per row: for 10,000 predictions
    the instances and Django's per-value compiling cost six times the insert itself."""
    meta = Prediction._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    constant = {
        f.attname: f.get_db_prep_save(now if f.attname in ("created_at", "updated_at") else f.get_default(), connection)
        for f in fields
    }
    result_field = meta.get_field("result")
    values = []
    for task, result, score, version in rows:
        row = dict(constant, task_id=task, project_id=project_id, score=score, model_version=version)
        row["result"] = result_field.get_db_prep_save(result, connection)
        values.append([row[f.attname] for f in fields])
    per = min(1000, (connection.features.max_query_params or 1 << 16) // len(fields))
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(values), per):
            chunk = values[start : start + per]
            sql = f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([one] * len(chunk))
            cursor.execute(sql, [v for row in chunk for v in row])


class PredictionSync:
    """`start` with the Sync: at a new commit of the branch its files are read by a thread meanwhile
    (the mount server and the cluster work while Label Studio makes the tasks); `run` once the
    tasks are made attaches what belongs to them."""

    def __init__(self, storage):
        self.storage = storage
        self.project_name, self.repo, self.branch = storage.predictions_branch()
        self.out = Outcome(source=f"{self.project_name}/{self.repo}@{self.branch}")
        self.limit = settings.PACHSTUDIO_MAX_JSON_MB * 1024 * 1024
        self.fresh, self.body, self.fetch_error, self.reader = False, b"", None, None
        self.clock = time.perf_counter()

    def start(self):
        self.out.commit = mount_client.branch_head(self.project_name, self.repo, self.branch)
        self.fresh = self.out.commit != self.storage.predictions_commit
        if self.fresh:
            self.reader = threading.Thread(target=self.fetch, name=f"predictions-{self.storage.id}", daemon=True)
            self.reader.start()

    def lap(self, name: str):
        now = time.perf_counter()
        self.out.seconds[name] = round(now - self.clock, 3)
        self.clock = now

    # --- which tasks, which files --------------------------------------------------------------
    def tasks_by_file(self, created_keys) -> dict:
        """{"<key>.json": (key, [(row_index, task id)])} of the tasks to look for predictions for:
        all of the Source's at a new commit, else those this Sync created."""
        links = self.storage.links.filter(object_exists=True)
        rows = []
        if self.fresh:
            rows = list(links.values_list("key", "row_index", "task_id"))
        else:
            for chunk in _batched(set(created_keys)):
                rows += links.filter(key__in=chunk).values_list("key", "row_index", "task_id")
        by_key = defaultdict(list)
        for key, row, task in rows:
            by_key[key].append((row, task))
        return {f"{key}.json": (key, tasks) for key, tasks in by_key.items()}

    def glob(self) -> bytes:
        return mount_client.glob_files(
            self.project_name, self.repo, self.out.commit, _glob(self.storage.clean_prefix), self.limit
        )

    def fetch(self):
        """The reader thread's: every prediction file under the Source's prefix, as the mount
        server's answer (bytes: the thread does no per-file work that would hold the GIL)."""
        try:
            self.body = self.glob()
        except Exception as exc:  # noqa: BLE001 - raised again in the Sync's thread
            self.fetch_error = exc

    def read(self, wanted: dict):
        """(path, text, None) or (path, None, why it cannot be read) of each wanted file the commit
        holds: at a new commit those of the glob read meanwhile, else by name when few, else a glob."""
        if self.fresh:
            self.reader.join()
            if self.fetch_error:
                raise self.fetch_error
        elif len(wanted) <= FEW:
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
        for row in mount_client.ndjson_rows(self.body if self.fresh else self.glob()):
            if row["path"] in wanted:
                problem = row["problem"] and (
                    self.too_big if row["data"] is None and row["size"] > self.limit else f"is {row['problem']}"
                )
                yield row["path"], row["data"], problem

    @property
    def too_big(self) -> str:
        return f"is bigger than the {settings.PACHSTUDIO_MAX_JSON_MB} MB a JSON file may have (PACHSTUDIO_MAX_JSON_MB)"

    # --- the work ------------------------------------------------------------------------------
    def run(self, created_keys) -> Outcome:
        self.clock = time.perf_counter()
        wanted = self.tasks_by_file(created_keys)
        checker = Checker(self.storage.project.label_config)
        default_version = f"{self.repo}@{self.out.commit}"
        self.lap("find")
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
                found.append((tasks[0][1], parse(path, text, checker, default_version)))
            except BadFile as exc:
                self.out.skipped += 1
                self.out.errors.append(str(exc))
        self.lap("read")
        project = self.storage.project
        self.add(project, found)
        self.lap("write")
        self.choose_version(project)
        return self.out

    def existing(self, project, task_ids: list, versions: set) -> set:
        """(task id, model version) pairs already there: those are not added again. Only versions
        the project has at all are looked for per task (a new commit's own version never is)."""
        present = set(
            Prediction.objects.filter(project_id=project.id, model_version__in=versions)
            .values_list("model_version", flat=True)
            .distinct()
        )
        pairs = set()
        if not present:
            return pairs
        for chunk in _batched(task_ids):
            rows = Prediction.objects.filter(task_id__in=chunk, model_version__in=present)
            pairs.update(rows.values_list("task_id", "model_version"))
        return pairs

    def add(self, project, found: list):
        versions = {v for _, predictions in found for _, _, v in predictions}
        known = self.existing(project, [task for task, _ in found], versions) if found else set()
        new = []
        for task, predictions in found:
            for result, score, version in predictions:
                if (task, version) not in known:
                    new.append((task, Prediction.prepare_prediction_result(result, project), score, version))
        self.lap("known")
        for batch in _batched(new, WRITE_BATCH):
            counts = Counter(task for task, _, _, _ in batch)
            with transaction.atomic():
                insert_predictions(project.id, batch)
                by_count = defaultdict(list)
                for task, n in counts.items():
                    by_count[n].append(task)
                for n, tasks in by_count.items():
                    for chunk in _batched(tasks):
                        Task.objects.filter(id__in=chunk).update(total_predictions=F("total_predictions") + n)
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


class Started:
    """A Sync's predictions, begun: `finish(created_keys)` once the tasks are made."""

    def __init__(self, storage):
        self.storage = storage
        self.work = PredictionSync(storage)
        self.error = None
        try:
            self.work.start()
        except MountServerError as exc:
            self.error = exc

    def finish(self, created_keys) -> Outcome:
        """Attach the predictions. A failure to read them is reported, and the next Sync reads every
        task's file again (nothing is doubled)."""
        storage, out = self.storage, self.work.out
        try:
            if self.error:
                raise self.error
            self.work.run(created_keys)
            storage.predictions_commit = out.commit
        except MountServerError as exc:
            logger.warning("predictions of source %s not read: %s", storage.id, exc)
            out.errors.append(
                f"predictions from {out.source} could not be read ({explain(exc)}); the next Sync tries again."
            )
            out.commit = ""
            storage.predictions_commit = None
        storage.save(update_fields=["predictions_commit", "predictions_version"])
        return out


def start_predictions(storage) -> Started | None:
    """At the start of a Source's Sync: its `predictions_from` begins to be read (None without one)."""
    return Started(storage) if storage.predictions_from else None
