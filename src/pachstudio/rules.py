"""Pachyderm's own rules for names, commit references and paths: the one copy the Label Studio
app, the mount server and the embedded PFS server all check against.

Plain functions and constants only (no exceptions of their own): each layer words a refusal the
way its users read it (a form field, an HTTP 400, a gRPC INVALID_ARGUMENT).

Where the rules come from (pachd's sources):
- names of projects, repos and branches: `ancestry.ValidateName`, `^[a-zA-Z0-9_-]+$`, so that a
  name can never be mistaken for ancestry syntax. pachd itself caps project names at
  63 - 8 - len("-v99") = 51 characters and wants them to start with a letter or digit
  (`pfs.Project.ValidateName`); it sets no length limit on repos and branches. This appliance
  holds every name to MAX_NAME, the Kubernetes resource-name limit pachd's own limits derive from.
- branch names (CreateBranch): a valid name that is not shaped like a commit id, since pachd
  reads `repo@<32 hex>` as that commit (`uuid.IsUUIDWithoutDashes`) and refuses such a branch.
- commit ids: a UUIDv4 without dashes, 32 lowercase hex characters (`uuid.NewWithoutDashes`).
- ancestry (`ancestry.Parse`): `ref^`, `ref^^`, `ref^N`, `ref~N` go N commits back; `ref.N` is
  the N-th commit of the branch counted from its start.
- paths: pachd cleans every path like Go's `path.Clean` rooted at '/'.
- a branch written as one text (`pfs.Branch.from_uri`, pachctl's `[project/]repo@branch`): the
  project before the first '/', the branch after the '@'.
"""

import posixpath
import re
from typing import Optional

NAME_PATTERN = r"^[a-zA-Z0-9_-]+$"
NAME_RE = re.compile(NAME_PATTERN)
MAX_NAME = 63

COMMIT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_UUID_RE = re.compile(r"[0-9a-f]{12}4[0-9a-f]{19}")  # pachd's uuidWithoutDashesRegexp (unanchored, as there)
# A branch or commit id, optionally followed by ancestry: what a "commit" field may hold.
COMMIT_REF_PATTERN = r"^[a-zA-Z0-9_^~.-]+$"
COMMIT_REF_RE = re.compile(COMMIT_REF_PATTERN)
MAX_COMMIT_REF = 100
_ANCESTRY_SEPARATORS = "^~."


def is_name(name) -> bool:
    """A project, repo or branch name pachd accepts (and that fits MAX_NAME)."""
    return isinstance(name, str) and 0 < len(name) <= MAX_NAME and bool(NAME_RE.match(name))


def sanitize_name(text: str) -> str:
    """`text` with every character a name may not hold replaced by '_' (pachd's SanitizeName)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text)


BRANCH_RULE = (
    f"a Pachyderm branch name holds only letters, digits, underscores and dashes (at most {MAX_NAME} "
    "characters) and is not shaped like a commit id (32 hex characters)"
)


def branch_name_problem(name) -> Optional[str]:
    """Why pachd would refuse `name` as a branch (BRANCH_RULE, worded), None when it is fine."""
    if not isinstance(name, str) or not name:
        return f"a branch name is needed: {BRANCH_RULE}"
    if not is_name(name) or _UUID_RE.search(name):
        return f"{name[:100]!r} is not a branch name Pachyderm accepts: {BRANCH_RULE}"
    return None


def parse_branch_uri(text) -> tuple[str, str, str]:
    """`[project/]repo[@branch]` as (project or "", repo, branch or "master"); ValueError naming
    the part that is not a Pachyderm name (a commit id or ancestry is not a branch here)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("give it as [project/]repo@branch")
    text = text.strip()
    rest, _, branch = text.partition("@")
    project, slash, repo = rest.rpartition("/")
    if "@" in text and not branch:
        raise ValueError(f"{text[:100]!r} names no branch after '@': give it as [project/]repo@branch")
    for part, value in (("project", project), ("repo", repo)):
        if (value or part == "repo" or slash) and not is_name(value):
            raise ValueError(
                f"{part} {value[:100]!r} of {text[:100]!r} is not a Pachyderm name: use only letters, digits, "
                f'"_" and "-", at most {MAX_NAME} characters, as [project/]repo@branch'
            )
    problem = branch_name_problem(branch) if branch else None
    if problem:
        raise ValueError(f"{problem}, as [project/]repo@branch")
    return project, repo, branch or "master"


def is_commit_id(value) -> bool:
    return isinstance(value, str) and bool(COMMIT_ID_RE.match(value))


def is_commit_ref(value) -> bool:
    """A commit id or branch name, with or without ancestry (`master^`, `<id>~2`, `master.1`)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_COMMIT_REF and bool(COMMIT_REF_RE.match(value))


def parse_ancestry(ref: str) -> tuple[str, int]:
    """(base, n) as pachd's ancestry.Parse: n > 0 goes n commits back from base, n < 0 is the
    -n-th commit from the start of the branch, 0 is base itself. ValueError when the suffix mixes
    separators (`master^~`) or is not a number."""
    at = next((i for i, c in enumerate(ref) if c in _ANCESTRY_SEPARATORS), -1)
    if at < 0:
        return ref, 0
    base, sep, rest = ref[:at], ref[at], ref[at + 1 :]
    if rest.isdigit():
        n = int(rest)
    elif all(c == sep for c in rest):
        n = len(rest) + 1
    else:
        raise ValueError(f"invalid ancestry syntax {ref!r}: use one of ^N, ~N or .N after the name")
    return base, -n if sep == "." else n


def clean_path(path: str) -> str:
    """Go's path.Clean rooted at '/', as pachd does to every path: `/a/b`, the root is `/`;
    `..` never climbs above the root."""
    path = posixpath.normpath("/" + path.strip("/"))
    return "/" if path in ("/", "//") else path


def climbs(path: str) -> bool:
    """The path has a `..` segment."""
    return ".." in path.split("/")


def leaves_folder(path: str) -> bool:
    """A user-given relative path (a prefix, a file key) that, joined to a folder, could end
    outside it: an absolute path or one with a `..` segment."""
    return path.startswith("/") or climbs(path)
