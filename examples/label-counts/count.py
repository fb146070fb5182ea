"""Per-class counts of Label Studio annotations: reads every <id>.json a Target Sync wrote under
/pfs/labels, writes /pfs/out/counts.json ({"class": count, ...}, most frequent first)."""

import collections
import json
import pathlib

counts = collections.Counter()
for path in sorted(pathlib.Path("/pfs/labels").rglob("*.json")):
    try:
        annotation = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        print(f"skipped {path}: not JSON")
        continue
    for region in annotation.get("result") or []:
        for key, values in (region.get("value") or {}).items():
            if (key.endswith("labels") or key == "choices") and isinstance(values, list):
                counts.update(v for v in values if isinstance(v, str))
pathlib.Path("/pfs/out/counts.json").write_text(json.dumps(dict(counts.most_common()), indent=2) + "\n")
print(f"{sum(counts.values())} labels in {len(counts)} classes")
