"""Glob -> datums with pachd's semantics: which paths a glob matches, what each datum holds, how
cross, union and join combine inputs, and pachd's datum IDs."""

import hashlib
import struct

import pytest

from pachstudio.datums import DatumError, datum_id, datums, glob_matches, replace

pytestmark = pytest.mark.fast

REPOS = {
    ("default", "images", "master"): {
        "/a.png": "h-a",
        "/b.png": "h-b",
        "/sub/c.png": "h-c",
        "/sub/deep/d.png": "h-d",
    },
    ("default", "labels", "master"): {"/a.json": "l-a", "/b.json": "l-b", "/z.json": "l-z"},
    ("lab", "empty", "master"): {},
}


def list_files(project, repo, ref):
    return list(REPOS[(project, repo, ref)].items())


def pfs(repo, glob, **kw):
    return {"pfs": {"repo": repo, "glob": glob, **kw}}


def paths(ds):
    return [tuple(i.path for i in d.inputs) for d in ds]


@pytest.mark.parametrize(
    "glob, path, hit",
    [
        ("/*", "/a.png", True),
        ("/*", "/sub/", True),
        ("/*", "/sub/c.png", False),
        ("/*/*", "/sub/c.png", True),
        ("/*/*", "/a.png", False),
        ("/**", "/sub/deep/d.png", True),
        ("/**", "/sub/", True),
        ("/?.png", "/a.png", True),
        ("/?.png", "/ab.png", False),
        ("/[ab].png", "/b.png", True),
        ("/[ab].png", "/c.png", False),
        ("/[!ab].png", "/c.png", True),
        ("/[a-c].png", "/c.png", True),
        ("/[a-c].png", "/d.png", False),
        ("/*.{png,jpg}", "/x.jpg", True),
        ("/*.{png,jpg}", "/x.gif", False),
        ("/(*).png", "/a.png", True),
        ("*", "/a.png", True),  # cleaned to /*
        ("/", "/", True),
        ("/\\*", "/*", True),
        ("/\\*", "/a", False),
    ],
)
def test_glob_matches_like_pachd(glob, path, hit):
    assert glob_matches(glob, path) is hit


def test_capture_groups_fill_join_on():
    assert replace("/(*)/(*).png", "/sub/c.png", "$1-$2") == "sub-c"
    assert replace("/(*).png", "/a.png", "${1}x") == "ax"
    assert replace("/+(a|b)*.png", "/abba.png", "$1") == "abba"
    assert replace("/(*).png", "/a.png", "$9") == ""


@pytest.mark.parametrize("glob", ["/[ab", "/{a,b", "/(a|b", "/!(a)", "/[]"])
def test_invalid_glob_is_refused_with_the_pattern(glob):
    with pytest.raises(DatumError, match="invalid glob pattern"):
        datums(pfs("images", glob), list_files)


def test_one_datum_per_match_holding_every_file_under_it():
    ds = datums(pfs("images", "/*"), list_files)
    assert paths(ds) == [("/a.png",), ("/b.png",), ("/sub/",)]
    sub = ds[2].inputs[0]
    assert [p for p, _ in sub.files] == ["/sub/c.png", "/sub/deep/d.png"]
    assert sub.name == "images" and sub.branch == "master" and sub.project == "default"


def test_root_glob_is_one_datum_of_the_whole_repo():
    (d,) = datums(pfs("images", "/"), list_files)
    assert d.inputs[0].path == "/"
    assert len(d.inputs[0].files) == 4


def test_double_star_makes_a_datum_per_file_and_directory():
    ds = datums(pfs("images", "/**"), list_files)
    assert {p for (p,) in paths(ds)} == {"/a.png", "/b.png", "/sub/", "/sub/c.png", "/sub/deep/", "/sub/deep/d.png"}


def test_empty_repo_has_no_datums():
    assert datums(pfs("empty", "/*", project="lab"), list_files) == []
    assert datums(pfs("empty", "/", project="lab"), list_files) == []


def test_cross_is_the_product_and_union_the_concatenation():
    cross = datums({"cross": [pfs("images", "/*.png"), pfs("labels", "/*")]}, list_files)
    assert len(cross) == 2 * 3
    assert paths(cross)[:3] == [("/a.png", "/a.json"), ("/a.png", "/b.json"), ("/a.png", "/z.json")]
    union = datums({"union": [pfs("images", "/*.png"), pfs("labels", "/*")]}, list_files)
    assert paths(union) == [("/a.png",), ("/b.png",), ("/a.json",), ("/b.json",), ("/z.json",)]


def test_join_pairs_datums_by_their_capture_group():
    spec = {"join": [pfs("images", "/(*).png", join_on="$1"), pfs("labels", "/(*).json", join_on="$1")]}
    assert sorted(paths(datums(spec, list_files))) == [("/a.png", "/a.json"), ("/b.png", "/b.json")]


def test_outer_join_keeps_unmatched_datums_of_the_outer_input_only():
    spec = {
        "join": [
            pfs("images", "/(*).png", join_on="$1"),
            pfs("labels", "/(*).json", join_on="$1", outer_join=True),
        ]
    }
    got = sorted(paths(datums(spec, list_files)))
    assert got == [("/a.png", "/a.json"), ("/b.png", "/b.json"), ("/z.json",)]


def test_input_name_defaults_to_the_repo_and_can_be_set():
    (d, *_) = datums(pfs("images", "/*", name="pics"), list_files)
    assert d.inputs[0].name == "pics"


def pachd_datum_id(parts):
    """pachd's DatumID written out from its Go source: BLAKE2b-256 over name, repo, branch, path,
    each followed by its length as big-endian int64."""
    h = hashlib.blake2b(digest_size=32)
    for part in parts:
        for text in part:
            h.update(text.encode())
            h.update(struct.pack(">q", len(text.encode())))
    return h.hexdigest()


def test_datum_ids_follow_pachds_scheme_and_are_stable():
    ds = datums({"cross": [pfs("images", "/a.png"), pfs("labels", "/b.json", name="l")]}, list_files)
    (d,) = ds
    assert d.id == pachd_datum_id([("images", "images", "master", "/a.png"), ("l", "labels", "master", "/b.json")])
    assert d.id == datum_id(d.inputs)
    assert len(d.id) == 64


def test_datum_hash_changes_with_content_but_id_does_not():
    before = {d.id: d.hash for d in datums(pfs("images", "/*"), list_files)}
    REPOS[("default", "images", "master")]["/sub/c.png"] = "h-c2"
    try:
        after = {d.id: d.hash for d in datums(pfs("images", "/*"), list_files)}
    finally:
        REPOS[("default", "images", "master")]["/sub/c.png"] = "h-c"
    assert before.keys() == after.keys()
    changed = [i for i in before if before[i] != after[i]]
    assert len(changed) == 1
    salted = {d.id: d.hash for d in datums(pfs("images", "/*"), list_files, salt="other")}
    assert all(salted[i] != before[i] for i in before)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({}, "no input set"),
        ({"pfs": {"glob": "/*"}}, "input must specify a repo"),
        ({"pfs": {"repo": "images"}}, "input must specify a glob"),
        ({"pfs": {"repo": "images", "glob": "/*"}, "cross": [pfs("labels", "/*")]}, "multiple input types set"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(DatumError, match=message):
        datums(spec, list_files)
