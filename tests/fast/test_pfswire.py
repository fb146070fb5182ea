"""The hand-written protobuf encoders and decoders (pfswire) agree with pachyderm-sdk's own
betterproto messages, both ways: a client or server on either side reads the same thing."""

import datetime

import pytest
from pachyderm_sdk.api import pfs

from pachstudio import pfswire

pytestmark = pytest.mark.fast

PATHS = ["/a.txt", "/folder/ünïcode name.json", "/" + "d/" * 200 + "deep", "/empty"]
DATA = [b"hello", bytes(range(256)) * 300, b""]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("data", DATA, ids=["small", "75KiB", "empty"])
def test_add_file_is_read_the_same_by_betterproto_and_by_us(path, data):
    raw = pfswire.add_file(path, data)
    msg = pfs.ModifyFileRequest().parse(raw)
    assert msg.add_file.path == path
    assert msg.add_file.raw == data  # a BytesValue: betterproto gives its bytes

    sdk = bytes(pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=data)))
    kind, (got_path, got_data, url) = pfswire.parse_modify_file(sdk)
    assert (kind, got_path, bytes(got_data), url) == ("add_file", path, data, "")


def test_delete_set_commit_and_copy_are_read_like_the_sdk_writes_them():
    assert pfswire.parse_modify_file(bytes(pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path="/x/y")))) == (
        "delete_file",
        "/x/y",
    )
    assert pfs.ModifyFileRequest().parse(pfswire.delete_file("/x/y")).delete_file.path == "/x/y"

    commit = pfs.Commit.from_uri("proj/images@master=0123456789abcdef0123456789abcdef")
    kind, got = pfswire.parse_modify_file(bytes(pfs.ModifyFileRequest(set_commit=commit)))
    assert kind == "set_commit" and got == commit

    copy = pfs.CopyFile(dst="/to", src=pfs.File(commit=commit, path="/from"), append=True)
    kind, got = pfswire.parse_modify_file(bytes(pfs.ModifyFileRequest(copy_file=copy)))
    assert kind == "copy_file" and got == copy

    url = pfs.AddFileUrlSource(url="s3://bucket/key")
    kind, (path, data, got_url) = pfswire.parse_modify_file(
        bytes(pfs.ModifyFileRequest(add_file=pfs.AddFile(path="/u", url=url)))
    )
    assert (kind, path, bytes(data), got_url) == ("add_file", "/u", b"", "s3://bucket/key")


@pytest.mark.parametrize("is_dir, size", [(False, 0), (False, 5), (True, 1 << 40)])
def test_file_info_encoded_by_us_is_the_sdk_file_info(is_dir, size):
    commit = pfs.Commit.from_uri("default/images@master=" + "ab" * 16)
    committed = 1_700_000_000.25
    digest = "0f" * 32
    raw = pfswire.FileInfoEncoder(commit, committed).encode("/dir/" if is_dir else "/f.bin", is_dir, size, digest)
    info = pfs.FileInfo().parse(raw)
    assert info.file.commit == commit
    assert info.file.path == ("/dir/" if is_dir else "/f.bin")
    assert info.file_type == (pfs.FileType.DIR if is_dir else pfs.FileType.FILE)
    assert info.size_bytes == size
    assert info.hash == bytes.fromhex(digest)
    assert info.committed == datetime.datetime.fromtimestamp(committed, datetime.timezone.utc)

    assert pfswire.file_info(raw) == (info.file.path, is_dir, size)
    assert pfswire.file_info(bytes(info)) == (info.file.path, is_dir, size)


def test_bytes_values_round_trip_without_losing_bytes():
    from betterproto.lib.google.protobuf import BytesValue

    for data in DATA:
        assert BytesValue().parse(pfswire.bytes_value(data)).value == data
        assert bytes(pfswire.bytes_value_of(bytes(BytesValue(value=data)))) == data


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 2**32, 2**63 - 1])
def test_varints_round_trip(n):
    raw = pfswire.varint(n)
    assert pfswire.read_varint(raw, 0) == (n, len(raw))


@pytest.mark.parametrize(
    "raw",
    [
        pfswire.add_file("/a", b"hello")[:-2],  # cut short
        b"\x80",  # a varint that never ends
        b"\x00\x01",  # field number 0
        b"\x0b",  # wire type 3 (groups)
    ],
)
def test_malformed_messages_are_refused_not_misread(raw):
    with pytest.raises(ValueError):
        pfswire.check(raw)


@pytest.mark.parametrize(
    "finished, parent, children, provenance",
    [
        (1_700_000_009.5, "cd" * 16, ["ef" * 16, "12" * 16], [("default/images", "34" * 16)]),
        (None, None, [], []),
    ],
)
def test_commit_info_encoded_by_us_is_the_sdk_commit_info(finished, parent, children, provenance):
    """What the embedded server's ListCommit sends (by hand) parses to the message it used to build."""
    repo = pfs.Repo.from_uri("default/labels")
    started = 1_700_000_000.25

    def when(t):
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc) if t else None

    expected = pfs.CommitInfo(
        commit=pfs.Commit(repo=repo, id="ab" * 16),
        origin=pfs.CommitOrigin(kind=pfs.OriginKind.USER),
        description='Label Studio project 1 "é": 1 added',
        started=when(started),
        finishing=when(finished),
        finished=when(finished),
        error="",
        size_bytes_upper_bound=7,
        details=pfs.CommitInfoDetails(size_bytes=7),
        created_at=when(started),
    )
    if parent:
        expected.parent_commit = pfs.Commit(repo=repo, id=parent)
    expected.child_commits = [pfs.Commit(repo=repo, id=k) for k in children]
    expected.direct_provenance = [pfs.Commit(repo=pfs.Repo.from_uri(r), id=k) for r, k in provenance]

    raw = pfswire.CommitInfoEncoder(repo).encode(
        "ab" * 16,
        int(pfs.OriginKind.USER),
        expected.description,
        started,
        finished,
        finished,
        "",
        7,
        parent,
        children,
        [(pfs.Repo.from_uri(r), k) for r, k in provenance],
    )

    assert pfs.CommitInfo().parse(raw) == pfs.CommitInfo().parse(bytes(expected))  # (unset times read as 1970)
    assert pfswire.commit_summary(raw) == ("ab" * 16, expected.description, started, finished)
    assert pfswire.commit_summary(bytes(expected)) == ("ab" * 16, expected.description, started, finished)


def test_a_diff_entry_the_sdk_writes_is_read_by_us_side_by_side():
    def info(path, size, ftype=pfs.FileType.FILE):
        return pfs.FileInfo(file=pfs.File(path=path), file_type=ftype, size_bytes=size)

    changed = bytes(pfs.DiffFileResponse(new_file=info("/ann/1.json", 12), old_file=info("/ann/1.json", 7)))
    added = bytes(pfs.DiffFileResponse(new_file=info("/ann/2.json", 3)))
    deleted = bytes(pfs.DiffFileResponse(old_file=info("/ann/3.json", 0)))
    folder = bytes(pfs.DiffFileResponse(new_file=info("/ann/", 15, pfs.FileType.DIR)))
    assert pfswire.diff_entry(changed) == (("/ann/1.json", False, 12), ("/ann/1.json", False, 7))
    assert pfswire.diff_entry(added) == (("/ann/2.json", False, 3), None)
    assert pfswire.diff_entry(deleted) == (None, ("/ann/3.json", False, 0))
    assert pfswire.diff_entry(folder) == (("/ann/", True, 15), None)
