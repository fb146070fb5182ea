"""Sets up the model loop on a cluster (the appliance's embedded server by default): a small image
set of its own (colour patches of three classes, made here, nothing downloaded) in the `images`
repo, the `labels` repo a Target Sync writes to, and the `train` and `predict` pipelines.
With --label-studio it also makes the Label Studio project: a Source on `images` whose predictions
come from `predict@master`, and a Target on `labels` with frozen splits.

    python3 examples/model-loop/try.py [grpc://127.0.0.1:30650] [--label-studio http://localhost:8080 --token TOKEN]
                                       [--pach-token TOKEN] [--image IMAGE]
"""

import argparse
import json
import os
import random
import struct
import sys
import urllib.request
import zlib

from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs, pps

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = ("red", "green", "blue")
MEANS = {"red": (170, 95, 95), "green": (95, 170, 95), "blue": (95, 95, 170)}
LABEL_CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="class" toName="image" showInline="true">'
    + "".join(f'<Choice value="{c}"/>' for c in CLASSES)
    + "</Choices></View>"
)
SPLITS = "train 50, val 50, seed 1"


def png(width: int, height: int, pixels) -> bytes:
    """An 8-bit RGB PNG of rows of (r, g, b), written by hand: no imaging library needed here."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(v for rgb in row for v in rgb) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def make_images(count: int = 60, seed: int = 26) -> dict:
    """{path: (PNG bytes, true class)}: patches whose colour scatters around their class's, so a few
    labels give a rough model and more labels a better one."""
    rng = random.Random(seed)
    images = {}
    for i in range(count):
        cls = CLASSES[rng.randrange(len(CLASSES))]
        colour = [min(255, max(0, m + rng.gauss(0, 40))) for m in MEANS[cls]]
        rows = [
            [tuple(int(min(255, max(0, c + rng.uniform(-12, 12)))) for c in colour) for _ in range(24)]
            for _ in range(24)
        ]
        images[f"patches/{i:03d}.png"] = (png(24, 24, rows), cls)
    return images


def setup_pachyderm(pach: Client, image: str = "") -> None:
    for name in ("images", "labels"):
        repo = pfs.Repo.from_uri(name)
        if not pach.pfs.repo_exists(repo):
            pach.pfs.create_repo(repo=repo)
    images = pfs.Branch.from_uri("images@master")
    if not any(True for _ in pach.pfs.list_commit(repo=pfs.Repo.from_uri("images"))):
        with pach.pfs.commit(branch=images) as c:
            for path, (data, _) in make_images().items():
                c.put_file_from_bytes(path=path, data=data)
        print("images@master: 60 colour patches under /patches")
    for name in ("train", "predict"):
        with open(os.path.join(HERE, f"{name}.json")) as f:
            spec = json.load(f)
        if image:  # a real cluster pulls it: one with numpy and Pillow
            spec["transform"]["image"] = image
        spec = json.dumps(spec)
        exists = pach.pps.pipeline_exists(pps.Pipeline(name=name))
        pach.pps.create_pipeline_v2(create_pipeline_request_json=spec, update=exists)
        print(f"pipeline {name} {'updated' if exists else 'created'}")


def ls_call(base: str, token: str, method: str, path: str, body=None) -> dict:
    request = urllib.request.Request(
        base.rstrip("/") + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.loads(answer.read() or b"null")


def setup_label_studio(base: str, token: str) -> dict:
    project = ls_call(base, token, "POST", "/api/projects", {"title": "Model loop", "label_config": LABEL_CONFIG})
    source = ls_call(
        base,
        token,
        "POST",
        "/api/storages/pachyderm",
        {
            "project": project["id"],
            "title": "Images",
            "repo": "images",
            "use_blob_urls": True,
            "recursive_scan": True,
            "predictions_from": "predict@master",
        },
    )
    target = ls_call(
        base,
        token,
        "POST",
        "/api/storages/export/pachyderm",
        {"project": project["id"], "title": "Labels", "repo": "labels", "layout": "source_path", "splits": SPLITS},
    )
    ls_call(base, token, "POST", f"/api/storages/pachyderm/{source['id']}/sync")
    print(f"Label Studio project {project['id']}: {base.rstrip('/')}/projects/{project['id']}/data")
    print(f"Versions page: {base.rstrip('/')}/pachyderm/targets/{target['id']}/versions")
    return {"project": project["id"], "source": source["id"], "target": target["id"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("address", nargs="?", default="grpc://127.0.0.1:30650")
    parser.add_argument("--label-studio", help="Label Studio's URL: also make the project, Source and Target")
    parser.add_argument("--token", default=os.environ.get("LABEL_STUDIO_TOKEN", ""), help="a Label Studio API token")
    parser.add_argument("--pach-token", default=os.environ.get("PACH_TOKEN", ""), help="a cluster with auth: its token")
    parser.add_argument("--image", default="", help="the pipelines' image on a real cluster (numpy and Pillow)")
    args = parser.parse_args(argv)
    setup_pachyderm(Client.from_pachd_address(args.address, auth_token=args.pach_token or None), args.image)
    if args.label_studio:
        if not args.token:
            sys.exit("--label-studio needs --token (Account & Settings > Access Token) or LABEL_STUDIO_TOKEN")
        return setup_label_studio(args.label_studio, args.token)
    return {}


if __name__ == "__main__":
    main()
