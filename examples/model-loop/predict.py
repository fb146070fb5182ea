"""Writes /pfs/out/<path>.json for every image of /pfs/images: the class the model in /pfs/train
predicts, as a Label Studio prediction (result, score, model_version), for a Source whose
`predictions_from` is this pipeline's output branch."""

import json
import os
import pathlib

import numpy as np
from PIL import Image

model = json.loads(pathlib.Path("/pfs/train/model.json").read_text())
centroids = {c: np.asarray(v) for c, v in model["centroids"].items()}
version = f"train@{os.environ.get('PACH_JOB_ID', 'unknown')}"  # the model's commit: train's job of this label version
root = pathlib.Path("/pfs/images")
written = 0
for path in sorted(root.rglob("*")):
    if not centroids or not path.is_file() or path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        continue
    with Image.open(path) as image:
        feature = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    distances = {c: float(np.linalg.norm(v - feature)) for c, v in centroids.items()}
    best = min(distances, key=distances.get)
    weights = {c: np.exp(-d / 25.0) for c, d in distances.items()}
    prediction = {
        "model_version": version,
        "score": round(float(weights[best] / sum(weights.values())), 4),
        "result": [
            {
                "from_name": model["from_name"],
                "to_name": model["to_name"],
                "type": "choices",
                "value": {"choices": [best]},
            }
        ],
    }
    out = pathlib.Path("/pfs/out") / (str(path.relative_to(root)) + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(prediction, indent=2))
    written += 1
print(f"{written} predictions by {version}")
