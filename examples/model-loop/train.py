"""Fits a nearest-centroid colour classifier on the labels a Target Sync wrote to /pfs/labels (one
file per task, each with its frozen split) and the images in /pfs/images; writes the model to
/pfs/out/model.json and its accuracy on the labeled tasks of the `val` split to /pfs/out/metrics.json."""

import json
import pathlib

import numpy as np
from PIL import Image


def tasks(root):
    """(source path, class, split, from_name, to_name) of every labeled task in the label files."""
    for path in sorted(root.rglob("*.json")):
        if "exports" in path.relative_to(root).parts:
            continue
        try:
            content = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            print(f"skipped {path}: not JSON")
            continue
        if "annotations" in content:  # one file per task
            data, annotations = content.get("data") or {}, content["annotations"]
        else:  # one file per annotation
            data, annotations = (content.get("task") or {}).get("data") or {}, [content]
        chosen = None
        for annotation in sorted(annotations, key=lambda a: a.get("id") or 0):
            if annotation.get("was_cancelled"):
                continue
            for region in annotation.get("result") or []:
                if (region.get("value") or {}).get("choices"):
                    chosen = region
        if chosen and data.get("pachyderm_path"):
            split = content.get("split", "train")
            yield data["pachyderm_path"], chosen["value"]["choices"][0], split, chosen["from_name"], chosen["to_name"]


def features(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)


labeled = list(tasks(pathlib.Path("/pfs/labels")))
train = [(features(pathlib.Path("/pfs/images") / p), c) for p, c, s, _, _ in labeled if s == "train"]
val = [(features(pathlib.Path("/pfs/images") / p), c) for p, c, s, _, _ in labeled if s == "val"]
classes = sorted({c for _, c in train})
centroids = {c: np.mean([f for f, cc in train if cc == c], axis=0).tolist() for c in classes}
names = {"from_name": labeled[0][3], "to_name": labeled[0][4]} if labeled else {}
pathlib.Path("/pfs/out/model.json").write_text(json.dumps({"centroids": centroids, **names}, indent=2))


def predict(feature):
    return min(centroids, key=lambda c: float(np.linalg.norm(np.asarray(centroids[c]) - feature)))


metrics = {"train_examples": len(train), "val_examples": len(val), "classes": len(classes)}
if val and centroids:
    metrics["accuracy"] = round(sum(predict(f) == c for f, c in val) / len(val), 4)
pathlib.Path("/pfs/out/metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
print(f"trained on {len(train)} labeled tasks of {len(classes)} classes; metrics {metrics}")
