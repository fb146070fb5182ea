"""The health of a label version, worked out once at the Sync that makes it (into the commit's
description and the manifest), so the Versions page never recomputes an old version.

- `annotations`: the project's annotations that were not skipped (`skipped`: those that were);
- `per_class`: for each class, the annotations that use it at least once (a class is a value of a
  `choices` or `*labels` field of a result, a taxonomy path joined with "/");
- `tasks_without_annotation`: tasks with no annotation that was not skipped;
- `empty_results`: annotations (not skipped) whose result is empty;
- `multi_labeled`: tasks labeled by more than one person (each person's latest annotation counts);
- `disagreements`: those of them whose people chose different class sets;
- `agreement`: the share of multi-labeled tasks on whose class set every person agrees
  ((multi_labeled - disagreements) / multi_labeled, 3 decimals), null when none is.
"""

from collections import Counter, defaultdict

from tasks.models import Annotation, Task

MAX_LISTED = 1000  # task ids of disagreements the manifest lists


def classes(result) -> frozenset:
    """The classes one annotation's result uses."""
    found = set()
    for region in result if isinstance(result, list) else ():
        value = region.get("value") if isinstance(region, dict) else None
        for key, items in (value or {}).items() if isinstance(value, dict) else ():
            if not (key == "choices" or key == "taxonomy" or key.endswith("labels")) or not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, str):
                    found.add(item)
                elif isinstance(item, list) and all(isinstance(x, str) for x in item):
                    found.add("/".join(item))
    return frozenset(found)


def compute(project_id: int) -> dict:
    """The figures above, plus `disagreeing_tasks` (at most MAX_LISTED ids) for the manifest."""
    per_class, skipped, empty, annotations = Counter(), 0, 0, 0
    labeled = set()
    latest = defaultdict(dict)  # task -> person -> (annotation id, classes)
    rows = Annotation.objects.filter(project_id=project_id).values_list(
        "id", "task_id", "completed_by_id", "result", "was_cancelled"
    )
    for ann_id, task_id, person, result, cancelled in rows.iterator(chunk_size=2000):
        if cancelled:
            skipped += 1
            continue
        annotations += 1
        labeled.add(task_id)
        if not result:
            empty += 1
        found = classes(result)
        per_class.update(found)
        who = person if person is not None else f"annotation {ann_id}"
        if ann_id > latest[task_id].get(who, (-1, None))[0]:
            latest[task_id][who] = (ann_id, found)
    multi = {t: people for t, people in latest.items() if len(people) > 1}
    disagreeing = sorted(t for t, people in multi.items() if len({c for _, c in people.values()}) > 1)
    tasks = Task.objects.filter(project_id=project_id).count()
    return {
        "tasks": tasks,
        "annotations": annotations,
        "skipped": skipped,
        "per_class": dict(sorted(per_class.items(), key=lambda kv: (-kv[1], kv[0]))),
        "tasks_without_annotation": tasks - len(labeled),
        "empty_results": empty,
        "multi_labeled": len(multi),
        "disagreements": len(disagreeing),
        "agreement": round((len(multi) - len(disagreeing)) / len(multi), 3) if multi else None,
        "disagreeing_tasks": disagreeing[:MAX_LISTED],
    }


def for_description(health: dict) -> dict:
    """What the commit's description keeps: the figures without the task list."""
    return {k: v for k, v in health.items() if k != "disagreeing_tasks"}
