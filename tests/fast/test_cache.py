"""The mount server's file cache: the right bytes at every offset, each byte fetched from the
cluster once, kept across restarts, bounded in size, and a failed fetch reported to the reader."""

import os
import random
import time

import pytest

from pachstudio.mount.cache import BLOCK, ContentCache
from pachstudio.mount.errors import MountError

pytestmark = pytest.mark.fast


class Cluster:
    """File contents behind an opener as the cache calls it (offset -> chunks), counting calls."""

    def __init__(self, chunk: int = 256 << 10):
        self.files, self.opened, self.sent, self.chunk, self.fail = {}, [], 0, chunk, None

    def opener(self, path):
        def open_at(offset):
            self.opened.append((path, offset))
            if self.fail:
                raise self.fail
            data = self.files[path]
            for at in range(offset, len(data), self.chunk):
                piece = data[at : at + self.chunk]
                self.sent += len(piece)
                yield piece

        return open_at


def read(cache, cluster, path, offset, length, commit="c1"):
    out = bytearray(length)
    n = cache.read_into(commit, path, len(cluster.files[path]), offset, memoryview(out), cluster.opener(path))
    return bytes(out[:n])


def eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


def content(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def cluster():
    return Cluster()


def test_reads_at_any_offset_return_the_files_bytes(tmp_path, cluster):
    data = cluster.files["/f"] = content(3 * BLOCK + 12345)
    cache = ContentCache(str(tmp_path / "cache"))
    for offset, length in [
        (0, 10),
        (BLOCK - 5, 10),
        (2 * BLOCK + 3, BLOCK),
        (len(data) - 7, 100),
        (len(data), 10),
        (17, 3 * BLOCK + 1),
    ]:
        assert read(cache, cluster, "/f", offset, length) == data[offset : offset + length], (offset, length)


def test_a_file_read_once_is_read_from_disk_after_that_and_after_a_restart(tmp_path, cluster):
    data = cluster.files["/f"] = content(2 * BLOCK + 100)
    cache = ContentCache(str(tmp_path / "cache"))
    assert read(cache, cluster, "/f", 0, len(data)) == data
    eventually(lambda: cache.contains("c1", "/f"))
    sent = cluster.sent
    assert sent == len(data)  # every byte once

    assert read(cache, cluster, "/f", 100, BLOCK) == data[100 : 100 + BLOCK]
    restarted = ContentCache(str(tmp_path / "cache"))
    assert restarted.contains("c1", "/f")
    assert read(restarted, cluster, "/f", 0, len(data)) == data
    assert cluster.sent == sent  # nothing fetched again
    # the same path in another commit is another file
    assert not restarted.contains("c2", "/f")


def test_a_partly_fetched_file_is_fetched_again_after_a_restart(tmp_path):
    cluster = Cluster(chunk=BLOCK)
    data = cluster.files["/big"] = content(40 * BLOCK)
    cache = ContentCache(str(tmp_path / "cache"))
    assert read(cache, cluster, "/big", 0, 10) == data[:10]
    assert not cache.contains("c1", "/big")
    restarted = ContentCache(str(tmp_path / "cache"))
    assert not restarted.contains("c1", "/big")
    assert read(restarted, cluster, "/big", 5 * BLOCK, 10) == data[5 * BLOCK : 5 * BLOCK + 10]


def test_the_cache_stays_within_its_limit_dropping_the_least_recently_used(tmp_path, cluster):
    for name in "abcd":
        cluster.files["/" + name] = content(BLOCK, seed=ord(name))
    cache = ContentCache(str(tmp_path / "cache"), limit=3 * BLOCK)
    for name in "abcd":
        assert read(cache, cluster, "/" + name, 0, BLOCK) == cluster.files["/" + name]
        eventually(lambda: cache.contains("c1", "/" + name))
    assert cache.total <= 3 * BLOCK
    assert not cache.contains("c1", "/a")
    assert all(cache.contains("c1", "/" + n) for n in "bcd")
    on_disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp_path / "cache") for f in fs)
    assert on_disk <= 3 * BLOCK


def test_a_failed_fetch_reaches_the_reader_and_the_next_read_tries_again(tmp_path, cluster):
    data = cluster.files["/f"] = content(BLOCK + 10)
    cache = ContentCache(str(tmp_path / "cache"))
    cluster.fail = MountError("cluster unreachable")
    with pytest.raises(MountError, match="cluster unreachable"):
        read(cache, cluster, "/f", 0, 100)
    cluster.fail = None
    assert read(cache, cluster, "/f", 0, 100) == data[:100]
