"""Pachyderm's rules (pachstudio.rules) and how each layer words a refusal: plain functions, no
servers."""

import re

import pytest

from pachstudio import rules

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("name", ["master", "a", "images_2024", "my-repo", "A-Z_0-9", "x" * 63])
def test_pachyderm_names(name):
    assert rules.is_name(name)


@pytest.mark.parametrize(
    "name", ["", "x" * 64, "a/b", "../etc", "a.b", "a^", "a~1", "répo", "a b", "main; rm -rf /", "a\x00", None, 7]
)
def test_not_pachyderm_names(name):
    assert not rules.is_name(name)


def test_sanitize_name_gives_a_name():
    assert rules.sanitize_name("a/b.c@d") == "a_b_c_d"
    assert rules.is_name(rules.sanitize_name("répo ü"))


@pytest.mark.parametrize(
    "value, is_id",
    [
        ("0123456789abcdef0123456789abcdef", True),
        ("0123456789ABCDEF0123456789ABCDEF", False),
        ("0123456789abcdef0123456789abcde", False),
        ("master", False),
    ],
)
def test_commit_ids_are_32_lowercase_hex(value, is_id):
    assert rules.is_commit_id(value) is is_id


@pytest.mark.parametrize(
    "ref", ["master", "master^", "master^^", "master~2", "master.1", "0123456789abcdef0123456789abcdef^"]
)
def test_commit_references(ref):
    assert rules.is_commit_ref(ref)


@pytest.mark.parametrize("ref", ["", "../../../etc", "a/b", "a b", "x" * 101, None])
def test_not_commit_references(ref):
    assert not rules.is_commit_ref(ref)


@pytest.mark.parametrize(
    "ref, parsed",
    [
        ("master", ("master", 0)),
        ("master^", ("master", 1)),
        ("master^^^", ("master", 3)),
        ("master^3", ("master", 3)),
        ("master~2", ("master", 2)),
        ("master~~", ("master", 2)),
        ("master.1", ("master", -1)),
        ("master.3", ("master", -3)),
    ],
)
def test_ancestry_as_pachd_parses_it(ref, parsed):
    assert rules.parse_ancestry(ref) == parsed


@pytest.mark.parametrize("ref", ["master^~", "master~x", "master^2^"])
def test_ancestry_that_mixes_separators_is_refused(ref):
    with pytest.raises(ValueError):
        rules.parse_ancestry(ref)


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("", "/"),
        ("/", "/"),
        ("//", "/"),
        ("a", "/a"),
        ("/a/b/", "/a/b"),
        ("a//b", "/a/b"),
        ("./a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/..", "/"),
        ("../../x", "/x"),
        ("//a", "/a"),
        ("///a//", "/a"),
    ],
)
def test_clean_path_is_gos_path_clean_rooted_at_slash(raw, cleaned):
    assert rules.clean_path(raw) == cleaned


@pytest.mark.parametrize(
    "path, leaves",
    [
        ("a/b", False),
        ("a/..b", False),
        ("..a", False),
        ("a/./b", False),
        ("..", True),
        ("../x", True),
        ("a/../../x", True),
        ("a/..", True),
        ("/etc/passwd", True),
    ],
)
def test_leaves_folder(path, leaves):
    assert rules.leaves_folder(path) is leaves


def test_climbs_ignores_a_leading_slash():
    assert not rules.climbs("/a/b") and rules.climbs("/a/../b")


# -- each layer keeps its wording -------------------------------------------------------------


def test_pfs_server_words_a_bad_name_as_pachd_does():
    from pachstudio.pfs_server.errors import InvalidArgument
    from pachstudio.pfs_server.pfs import paths

    assert paths.check_name("repo", "images") == "images"
    with pytest.raises(InvalidArgument, match="repo name must not be empty"):
        paths.check_name("repo", "")
    with pytest.raises(
        InvalidArgument,
        match=r"branch name \(a/b\) invalid: only alphanumeric "
        r"characters, underscores, and dashes are allowed, "
        r"at most 63 characters",
    ):
        paths.check_name("branch", "a/b")
    with pytest.raises(InvalidArgument, match="NUL byte"):
        paths.clean("a\x00b")
    assert paths.clean("a/../b/") == "/b"


def test_pfs_server_paths_keeps_its_public_names():
    from pachstudio.pfs_server.pfs import paths

    assert list(paths.parent_dirs("/a/b/c")) == ["/a/", "/a/b/"]
    assert paths.is_glob("/a/*") and not paths.is_glob("/a/b")
    assert paths.glob_to_regex("/a/**/*.png").match("/a/x/y/z.png")


def test_label_studio_paths_say_leaves_its_folder():
    from pachstudio.labelstudio.storage.paths import BadPath, check_relative, mount_name

    for evil in ("../x", "/etc", "a/../../b"):
        with pytest.raises(BadPath, match="leaves its folder"):
            check_relative(evil)
    with pytest.raises(BadPath, match="invalid path"):
        check_relative("a\\b")
    assert rules.is_name(mount_name("ro", "default", "images", "master^2"))


def test_mount_api_checks_names_and_paths_with_the_same_rules():
    from pydantic import ValidationError

    from pachstudio.mount.api import MountRequestItem, _check_prefix, _mount_paths
    from pachstudio.mount.errors import BadRequest

    ok = MountRequestItem(name="m", repo="r" * 63, branch="b" * 63, commit="master^2")
    assert ok.project == "default"
    for bad in (
        {"repo": "r" * 64},
        {"repo": "a/b"},
        {"repo": "r", "branch": "b" * 64},
        {"repo": "r", "project": "../default"},
        {"repo": "r", "commit": "../../etc"},
    ):
        with pytest.raises(ValidationError):
            MountRequestItem(name="m", **bad)
    assert _mount_paths(["a/b/", "/a/b", "c"]) == ("/a/b", "/c")
    assert _mount_paths(["a", "/"]) == ()
    for bad in ("../x", "a/../../x", "a\\b", "a\x01"):
        with pytest.raises(BadRequest):
            _mount_paths([bad])
    _check_prefix("a/b")
    with pytest.raises(BadRequest, match="without '..'"):
        _check_prefix("a/../b")


@pytest.mark.parametrize(
    "text, parts",
    [
        ("preds@master", ("", "preds", "master")),
        ("vision/preds@out", ("vision", "preds", "out")),
        (" preds ", ("", "preds", "master")),
        ("vision/preds", ("vision", "preds", "master")),
    ],
)
def test_a_branch_given_as_one_text(text, parts):
    assert rules.parse_branch_uri(text) == parts


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "give it as [project/]repo@branch"),
        ("preds@", "names no branch after '@'"),
        ("a/b/preds@master", "project 'a/b' of 'a/b/preds@master' is not a Pachyderm name"),
        ("pre ds@master", "repo 'pre ds'"),
        ("/preds@master", "project ''"),
        ("preds@master^", "'master^' is not a branch name Pachyderm accepts"),
        ("preds@0123456789ab4def0123456789abcdef", "not a branch name Pachyderm accepts"),
        ("@master", "repo ''"),
    ],
)
def test_a_branch_text_that_is_not_one_says_which_part_is_wrong(text, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        rules.parse_branch_uri(text)
