"""Frozen splits of a Target (`splits`, e.g. "train 80, val 10, test 10, seed 7"): each task's
split follows from SHA-256 of the seed and the task's source path (its id when it has none), so a
task keeps its split however the project grows, and the same file keeps it across projects.

Syntax: parts separated by commas (or semicolons), each a name and a weight (`train 80`,
`train=80`, `train: 80`); one optional `seed <text>` (default 0). Weights are relative shares
(80/10/10 and 8/1/1 split alike); names are letters, digits, "_" and "-", distinct, at most
MAX_PARTS. Changing the rule re-splits: every label file is written again at the next Sync.
"""

import functools
import hashlib
import re

FIELD = "split"  # the key a label file holds its task's split under
MAX_PARTS = 10
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
PART = re.compile(r"^\s*([^\s:=]+)\s*[:=]?\s*(.*?)\s*$")
EXAMPLE = '"train 80, val 10, test 10, seed 7"'


def parse(text) -> tuple[list, str]:
    """([(name, weight)], seed) of a rule; ([], "") for none. ValueError says what is wrong."""
    if text in (None, ""):
        return [], ""
    if not isinstance(text, str):
        raise ValueError(f"splits: give a text like {EXAMPLE}")
    parts, seed = [], None
    for raw in re.split(r"[,;]", text):
        if not raw.strip():
            continue
        match = PART.match(raw)
        name, value = match.group(1), match.group(2)
        if name.lower() == "seed":
            if seed is not None:
                raise ValueError("splits: give the seed once")
            if not value or len(value) > 64 or any(c < " " for c in value):
                raise ValueError(f"splits: the seed is a text of 1 to 64 characters, as in {EXAMPLE}")
            seed = value
            continue
        if not NAME.match(name):
            raise ValueError(
                f"splits: {name[:40]!r} is not a split name (a letter, then letters, digits, '_' or '-', "
                f"at most 32), as in {EXAMPLE}"
            )
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"splits: {name} needs a positive number as its share, as in {EXAMPLE}") from None
        if not 0 < weight < 1e9:
            raise ValueError(f"splits: the share of {name} must be a positive number, got {value[:20]}")
        if name in (n for n, _ in parts):
            raise ValueError(f"splits: {name} is named twice")
        parts.append((name, int(weight) if weight == int(weight) else weight))
    if len(parts) > MAX_PARTS:
        raise ValueError(f"splits: at most {MAX_PARTS} parts, got {len(parts)}")
    if len(parts) == 1:
        raise ValueError(f"splits: one part splits nothing; name at least two, as in {EXAMPLE}")
    if not parts:
        if seed is not None:
            raise ValueError(f"splits: a seed alone splits nothing; name the parts, as in {EXAMPLE}")
        return [], ""
    return parts, seed if seed is not None else "0"


def canonical(text) -> str:
    """The rule as stored and shown: "train 80, val 10, test 10, seed 7" ("" for none)."""
    parts, seed = parse(text)
    if not parts:
        return ""
    return ", ".join(f"{n} {w}" for n, w in parts) + f", seed {seed}"


def key_of(task_id: int, data) -> str:
    """What a task's split is hashed from: its source path, else its id."""
    path = (data or {}).get("pachyderm_path") if isinstance(data, dict) else None
    if isinstance(path, str) and path.strip("/"):
        return path.lstrip("/")
    return f"task {task_id}"


class Splitter:
    """A parsed rule; `of(task_id, data)` is the task's split."""

    def __init__(self, text):
        self.parts, self.seed = parse(text)
        total = sum(w for _, w in self.parts)
        self.bounds, edge = [], 0.0
        for name, weight in self.parts:
            edge += weight / total
            self.bounds.append((edge, name))

    def __bool__(self):
        return bool(self.parts)

    @property
    def names(self) -> list:
        return [n for n, _ in self.parts]

    def of(self, task_id: int, data) -> str:
        digest = hashlib.sha256(f"{self.seed}\n{key_of(task_id, data)}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64
        for edge, name in self.bounds:
            if point < edge:
                return name
        return self.bounds[-1][1]  # rounding at the top edge

    def describe(self) -> dict:
        return {
            "rule": ", ".join(f"{n} {w}" for n, w in self.parts) + f", seed {self.seed}",
            "parts": dict(self.parts),
            "seed": self.seed,
            "hash": "sha256(seed + newline + source path, else 'task <id>'), first 8 bytes / 2^64 against the "
            "cumulative shares in the order given",
        }


@functools.lru_cache(maxsize=64)
def splitter(text: str) -> Splitter:
    """The parsed rule, once per text: a Sync asks it for every label file it writes."""
    return Splitter(text)
