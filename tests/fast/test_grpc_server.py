"""What the embedded server's gRPC server owes its clients (`pfs_server.grpc_server`), as they meet
it: the server in this process on a loopback port, real grpcio channels, the real pachyderm-sdk, and,
where a client must misbehave in a way grpcio's client never does (a message header announcing 1 GiB,
a gzip bomb), a bare HTTP/2 client written with h2 in this file."""

import select
import socket
import threading
import time
import zlib

import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import psutil
import pytest
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs

from pachstudio.pfs_server.grpc_server import Limits
from pachstudio.pfs_server.main import build_server
from plugins.pfs import add_file, commit_files, read

pytestmark = pytest.mark.fast

MiB = 1 << 20


@pytest.fixture
def serve(tmp_path):
    """serve(**limits) -> (address "127.0.0.1:port", server, store): a server of its own with those limits."""
    started = []

    def make(**limits):
        server, store, port = build_server(
            str(tmp_path / f"pfs{len(started)}"), "127.0.0.1", 0, limits=Limits(**limits)
        )
        server.start()
        started.append(server)
        return f"127.0.0.1:{port}", server, store

    yield make
    for server in started:
        server.stop(0).wait()
        server.runner.stop()


def channel(address: str, **options) -> grpc.Channel:
    """A channel with a connection of its own (grpcio shares one between channels to an address)."""
    opts = [
        ("grpc.max_receive_message_length", 64 * MiB),
        ("grpc.max_send_message_length", 64 * MiB),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    return grpc.insecure_channel(address.removeprefix("grpc://"), options=opts + list(options.items()))


def sdk(address: str) -> Client:
    return Client.from_pachd_address(f"grpc://{address}")


def put_many(address: str, uri: str, files: dict, **call_options):
    with channel(address) as ch:
        modify = ch.stream_unary("/pfs_v2.API/ModifyFile")
        ops = [bytes(pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri(uri)))]
        ops += [add_file(path, data) for path, data in files.items()]
        modify(iter(ops), **call_options)


def inspect_repo(ch: grpc.Channel, name: str, timeout=None) -> pfs.RepoInfo:
    call = ch.unary_unary("/pfs_v2.API/InspectRepo")
    return pfs.RepoInfo().parse(call(bytes(pfs.InspectRepoRequest(repo=pfs.Repo.from_uri(name))), timeout=timeout))


def subscribe(ch: grpc.Channel, repo: str):
    """A SubscribeCommit watch on repo@master, running on the server once its first answer is in."""
    watch = ch.unary_stream("/pfs_v2.API/SubscribeCommit")(
        bytes(pfs.SubscribeCommitRequest(repo=pfs.Repo.from_uri(repo), branch="master"))
    )
    assert pfs.CommitInfo().parse(next(watch)).commit.repo.name == repo
    return watch


def wait_for_open_commit(ch: grpc.Channel, commit: pfs.Commit, timeout: float):
    call = ch.unary_unary("/pfs_v2.API/InspectCommit")
    request = pfs.InspectCommitRequest(commit=commit, wait=pfs.CommitState.FINISHED)
    return call(bytes(request), timeout=timeout)


def raw_call(address: str, path: str, pieces, headers=(), limit: float = 20):
    """One call from a bare HTTP/2 client that sends `pieces` as DATA (within flow control, stopping
    as soon as the server answers). Returns (the answer's headers and trailers, bytes sent)."""
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=0.05)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.send_headers(
        1,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "x"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *headers,
        ],
    )
    sock.sendall(conn.data_to_send())
    answer, sent, ended, pending = {}, 0, False, [bytes(p) for p in pieces]
    deadline = time.monotonic() + limit
    while not ended and time.monotonic() < deadline:
        n = min(len(pending[0]), conn.local_flow_control_window(1), conn.max_outbound_frame_size) if pending else 0
        if n > 0:
            conn.send_data(1, pending[0][:n])
            sent += n
            pending[0] = pending[0][n:]
            if not pending[0]:
                pending.pop(0)
            sock.sendall(conn.data_to_send())
        try:
            data = sock.recv(MiB)
        except socket.timeout:
            continue
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                answer.update(ev.headers)
            ended = ended or isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset))
        sock.sendall(conn.data_to_send())
    sock.close()
    return answer, sent


class Proxy:
    """A TCP relay between a client and the server that can go silent: `vanish()` stops relaying
    in both directions and keeps both sockets open, as a client whose machine is gone does (no FIN,
    no RST). No real client can be made to vanish like that on loopback, so this stands in for one.
    `closed_by_server` is set when the server closes its side; `goaway` when the server sends an
    HTTP/2 GOAWAY (read from the frames it sends: a client that gets one may close first)."""

    def __init__(self, target: str):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.silent = threading.Event()
        self.closed_by_server = threading.Event()
        self.goaway = threading.Event()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _frames(self, pending: bytes) -> bytes:
        """Reads the server's HTTP/2 frames (9-byte header: length, type, ...); what is left over."""
        while len(pending) >= 9:
            length = int.from_bytes(pending[:3], "big")
            if len(pending) < 9 + length:
                break
            if pending[3] == 0x7:  # GOAWAY
                self.goaway.set()
            pending = pending[9 + length :]
        return pending

    def _relay(self, client, upstream):
        from_server = b""
        while True:
            try:
                readable, _, _ = select.select([client, upstream], [], [], 0.1)
            except (OSError, ValueError):  # closed by close()
                return
            for s in readable:
                try:
                    data = s.recv(MiB)
                except OSError:
                    data = b""
                if not data:
                    if s is upstream:
                        self.closed_by_server.set()
                    if not self.silent.is_set():
                        return
                    readable = []  # a vanished client notices nothing
                    break
                if s is upstream:
                    from_server = self._frames(from_server + data)
                if not self.silent.is_set():
                    (upstream if s is client else client).sendall(data)
            if self.silent.is_set() and self.closed_by_server.is_set():
                return

    def vanish(self):
        self.silent.set()

    def close(self):
        self.listener.close()
        for s in self.sockets:
            s.close()


# --- deadlines, keepalive, idle connections ---


def test_a_client_deadline_answers_deadline_exceeded_and_ends_the_handler(serve):
    address, _, _ = serve(workers=2)
    pach = sdk(address)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("waits"))
    open_commit = pach.pfs.start_commit(branch=pfs.Branch.from_uri("waits@master"))
    with channel(address) as ch:
        started = time.monotonic()
        for _ in range(2):  # both workers, each waiting for a commit that never finishes
            with pytest.raises(grpc.RpcError) as late:
                wait_for_open_commit(ch, open_commit, timeout=1)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 10
        # had either handler outlived its call, no worker would be free for this one
        assert inspect_repo(ch, "waits", timeout=5).repo.name == "waits"


def test_a_client_that_vanishes_mid_call_is_dropped_by_keepalive_and_gives_its_worker_back(serve):
    address, _, _ = serve(workers=1, keepalive_s=0.5, keepalive_timeout_s=1)
    pach = sdk(address)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("watched"))
    commit_files(pach, "watched@master", {"/a": b"a"})
    pach._channel.close()
    proxy = Proxy(address)
    try:
        far = channel(proxy.address)
        subscribe(far, "watched")  # the server's one worker is now this watch's
        proxy.vanish()
        assert proxy.closed_by_server.wait(15), "the server kept the dead client's connection"
        with channel(address) as ch:
            assert inspect_repo(ch, "watched", timeout=5).repo.name == "watched"
    finally:
        proxy.close()


def test_a_connection_with_no_call_is_closed_after_the_idle_time(serve):
    address, _, _ = serve(idle_s=1)
    proxy = Proxy(address)
    try:
        with channel(proxy.address) as ch:
            sdk(address).pfs.create_repo(repo=pfs.Repo.from_uri("idle"))
            assert inspect_repo(ch, "idle").repo.name == "idle"
            assert proxy.goaway.wait(15), "the server never ended the idle connection"
            assert inspect_repo(ch, "idle", timeout=10).repo.name == "idle"  # the client just reconnects
    finally:
        proxy.close()


# --- limits on calls ---


def test_calls_beyond_a_connections_limit_wait_for_a_free_stream(serve):
    address, _, _ = serve(workers=8, streams_per_connection=2)
    pach = sdk(address)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("busy"))
    commit_files(pach, "busy@master", {"/a": b"a"})
    with channel(address) as ch:
        watches = [subscribe(ch, "busy"), subscribe(ch, "busy")]
        with pytest.raises(grpc.RpcError) as queued:
            inspect_repo(ch, "busy", timeout=1)
        assert queued.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        with channel(address) as other:  # another connection has streams of its own
            assert inspect_repo(other, "busy", timeout=5).repo.name == "busy"
        watches[0].cancel()
        assert inspect_repo(ch, "busy", timeout=5).repo.name == "busy"
        watches[1].cancel()


def test_a_client_that_ignores_the_limit_has_the_calls_beyond_it_refused(serve):
    address, _, _ = serve(workers=8, streams_per_connection=4)
    pach = sdk(address)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("greedy"))
    commit_files(pach, "greedy@master", {"/a": b"a"})
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=0.2)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while conn.remote_settings.max_concurrent_streams != 4:
        conn.receive_data(sock.recv(MiB))
    sock.sendall(conn.data_to_send())
    conn.remote_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 100  # ignore what it said
    conn.remote_settings.acknowledge()
    request = bytes(pfs.SubscribeCommitRequest(repo=pfs.Repo.from_uri("greedy"), branch="master"))
    for sid in range(1, 20, 2):  # ten watches at once
        conn.send_headers(
            sid,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/pfs_v2.API/SubscribeCommit"),
                (":authority", "x"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ],
        )
        conn.send_data(sid, b"\0" + len(request).to_bytes(4, "big") + request, end_stream=True)
    sock.sendall(conn.data_to_send())
    answered, refused = set(), set()
    deadline = time.monotonic() + 10
    while len(answered) + len(refused) < 10 and time.monotonic() < deadline:
        try:
            data = sock.recv(MiB)
        except socket.timeout:
            continue
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                answered.add(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                assert ev.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
                refused.add(ev.stream_id)
    sock.close()
    assert (len(answered), len(refused)) == (4, 6)


def test_a_call_beyond_the_workers_waits_for_one_and_is_answered(serve):
    address, _, _ = serve(workers=2)
    pach = sdk(address)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("full"))
    commit_files(pach, "full@master", {"/a": b"a"})
    pach._channel.close()
    holders = [channel(address), channel(address)]
    watches = [subscribe(ch, "full") for ch in holders]  # both workers
    answered = []
    with channel(address) as ch:
        t = threading.Thread(target=lambda: answered.append(inspect_repo(ch, "full", timeout=30)))
        t.start()
        t.join(1.5)
        assert t.is_alive() and not answered  # waiting, neither answered nor refused
        watches[0].cancel()
        t.join(10)
        assert [a.repo.name for a in answered] == ["full"]
    watches[1].cancel()
    for h in holders:
        h.close()


def test_many_calls_at_once_on_one_connection_are_all_answered(serve):
    address, _, _ = serve(workers=8)  # 4 at a time on one connection; the others wait their turn
    pach = sdk(address)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("busy"))
    commit_files(pach, "busy@master", {f"/{i}": b"%d" % i for i in range(20)})
    # (the connection is up, so the client knows the limit: it queues what is beyond, where calls
    # sent before the server's SETTINGS arrive could be refused with REFUSED_STREAM, as HTTP/2 says)
    answers, errors = {}, []

    def reader(i):
        try:
            answers[i] = read(pach, f"busy@master:/{i % 20}")
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert answers == {i: b"%d" % (i % 20) for i in range(200)}


# --- message sizes ---


def test_a_message_announcing_more_than_the_limit_is_refused_before_it_is_received(serve):
    address, _, _ = serve()
    header = b"\0" + (1 << 30).to_bytes(4, "big")  # one uncompressed message of 1 GiB
    answer, sent = raw_call(address, "/pfs_v2.API/CreateRepo", [header] + [bytes(16 << 10)] * 64)
    assert answer[b"grpc-status"] == b"8"  # RESOURCE_EXHAUSTED
    assert b"larger than max" in answer[b"grpc-message"]
    assert sent < MiB  # refused on the announced length, not after buffering what came


def test_a_compressed_message_that_inflates_beyond_the_limit_is_refused_without_inflating_it(serve):
    address, _, _ = serve()
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    bomb = b"".join([squeeze.compress(bytes(MiB)) for _ in range(1024)] + [squeeze.flush()])  # 1 GiB of zeros
    assert len(bomb) < 2 * MiB
    before = psutil.Process().memory_info().rss
    answer, _ = raw_call(
        address, "/pfs_v2.API/CreateRepo", [b"\1" + len(bomb).to_bytes(4, "big") + bomb], [("grpc-encoding", "gzip")]
    )
    assert answer[b"grpc-status"] == b"8"
    assert b"larger than max" in answer[b"grpc-message"]
    assert psutil.Process().memory_info().rss - before < 200 * MiB


def test_a_message_over_the_limit_is_refused_and_the_connection_goes_on(serve):
    address, _, _ = serve()
    pach = sdk(address)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("limits"))
    with channel(address) as ch:
        modify = ch.stream_unary("/pfs_v2.API/ModifyFile")
        too_big = [
            bytes(pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri("limits@master"))),
            add_file("/huge", bytes(21 * MiB)),
        ]
        with pytest.raises(grpc.RpcError) as refused:
            modify(iter(too_big))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in refused.value.details()
        assert inspect_repo(ch, "limits").repo.name == "limits"
    with pytest.raises(grpc.RpcError) as nothing:
        read(pach, "limits@master:/huge")
    assert nothing.value.code() == grpc.StatusCode.NOT_FOUND


def test_big_files_go_up_and_come_back(pach):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("big"))
    data = bytes(range(256)) * (40 * MiB // 256)  # in chunks of 19 MiB at most, both ways
    pach.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("big@master"), path="/big.bin", data=data)
    assert read(pach, "big@master:/big.bin") == data


def test_a_compressed_request_is_understood(pach, address):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("zipped"))
    put_many(address, "zipped@master", {"/a.txt": b"a" * 10_000}, compression=grpc.Compression.Gzip)
    assert read(pach, "zipped@master:/a.txt") == b"a" * 10_000


# --- answers ---


def test_an_unknown_method_is_unimplemented(address):
    with channel(address) as ch:
        with pytest.raises(grpc.RpcError) as refused:
            ch.unary_unary("/pfs_v2.API/NoSuchCall")(b"")
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_error_texts_with_any_characters_reach_the_client_unchanged(pach):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("texts"))
    commit_files(pach, "texts@master", {"/x": b"x"})
    path = "/naïve 100%/ünïcode\tfile"
    with pytest.raises(grpc.RpcError) as missing:
        read(pach, f"texts@master:{path}")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert path in missing.value.details()


def test_a_long_stream_arrives_whole_and_in_order_to_fast_and_slow_readers(pach, address):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("many"))
    files = [f"/d{i % 10}/{'long-name-' * 8}{i:05}" for i in range(3_000)]  # about 500 KB of FileInfo
    put_many(address, "many@master", {path: b"" for path in files})
    request = bytes(pfs.WalkFileRequest(file=pfs.File.from_uri("many@master:/")))
    with channel(address) as ch:
        fast = list(ch.unary_stream("/pfs_v2.API/WalkFile")(request))
        slow = ch.unary_stream("/pfs_v2.API/WalkFile")(request)
        first = [next(slow) for _ in range(10)]
        time.sleep(1.5)  # a reader that stalls: the server waits on flow control, then goes on
        slow = first + list(slow)
    assert [pfs.FileInfo().parse(m).file.path for m in fast] == ["/"] + sorted([f"/d{i}/" for i in range(10)] + files)
    assert slow == fast


# --- shutdown ---


def test_shutdown_says_goaway_at_once_then_lets_running_calls_finish_within_the_grace(serve):
    address, server, store = serve()
    pach = sdk(address)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("closing"))
    open_commit = pach.pfs.start_commit(branch=pfs.Branch.from_uri("closing@master"))
    pach._channel.close()
    outcome = {}
    with channel(address) as running, channel(address) as idle:
        assert inspect_repo(idle, "closing").repo.name == "closing"  # connected before the stop

        def waiter():
            outcome["info"] = pfs.CommitInfo().parse(wait_for_open_commit(running, open_commit, timeout=30))

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.5)  # the wait is running on the server
        stopped = server.stop(grace=10)
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as refused:  # the idle connection had its GOAWAY: no new calls
            inspect_repo(idle, "closing", timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert not stopped.is_set() and t.is_alive()  # the running call still runs
        store.finish_commit(store.get_commit(open_commit.id))
        t.join(10)
        assert outcome["info"].commit.id == open_commit.id  # it ended with its answer
        assert stopped.wait(10)


def test_a_call_still_running_when_the_grace_ends_is_cancelled(serve):
    address, server, _ = serve()
    pach = sdk(address)
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("cut"))
    open_commit = pach.pfs.start_commit(branch=pfs.Branch.from_uri("cut@master"))
    errors = []
    with channel(address) as ch:

        def waiter():
            try:
                wait_for_open_commit(ch, open_commit, timeout=60)
            except grpc.RpcError as e:
                errors.append(e.code())

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert server.stop(grace=1).wait(10)
        t.join(10)
        assert time.monotonic() - started < 5
    assert errors and errors[0] in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
