"""The names in a route's path (project, repo, branch) checked by `rules.py`'s rules, as 400s that
say which name is wrong and why, before any cluster call."""

from ..rules import MAX_NAME, NAME_PATTERN, branch_name_problem, is_name
from .errors import BadRequest


def check_name(field: str, value: str) -> None:
    """A project or repo name."""
    if not is_name(value):
        raise BadRequest(f"{field}: {value[:100]!r} is not a Pachyderm name ({NAME_PATTERN}, at most {MAX_NAME})")


def check_branch(project: str, repo: str, branch: str) -> None:
    """A branch and the project and repo it belongs to."""
    check_name("project", project)
    check_name("repo", repo)
    problem = branch_name_problem(branch)
    if problem:
        raise BadRequest(f"branch: {problem}")
