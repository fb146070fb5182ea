"""The embedded server's HTTP/2 transport (`pfs_server.transport`), as gRPC clients meet it: the
server in this process on a loopback port, real grpcio channels and the real pachyderm-sdk."""

import threading
import time

import grpc
import pytest
from pachyderm_sdk.api import pfs

from plugins.pfs import add_file, commit_files, read

pytestmark = pytest.mark.fast

MiB = 1 << 20


def channel(address: str, **options) -> grpc.Channel:
    opts = [("grpc.max_receive_message_length", 32 * MiB), ("grpc.max_send_message_length", 32 * MiB)]
    return grpc.insecure_channel(address.removeprefix("grpc://"), options=opts + list(options.items()))


def put_many(address: str, uri: str, files: dict, **call_options):
    with channel(address) as ch:
        modify = ch.stream_unary("/pfs_v2.API/ModifyFile")
        ops = [bytes(pfs.ModifyFileRequest(set_commit=pfs.Commit.from_uri(uri)))]
        ops += [add_file(path, data) for path, data in files.items()]
        modify(iter(ops), **call_options)


def test_big_files_go_up_and_come_back_through_the_flow_control_windows(pach, address):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("big"))
    data = bytes(range(256)) * (40 * MiB // 256)  # more than any window, in chunks of 19 MiB at most
    pach.pfs.put_file_from_bytes(commit=pfs.Commit.from_uri("big@master"), path="/big.bin", data=data)
    assert read(pach, "big@master:/big.bin") == data


def test_a_compressed_request_is_understood(pach, address):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("zipped"))
    put_many(address, "zipped@master", {"/a.txt": b"a" * 10_000}, compression=grpc.Compression.Gzip)
    assert read(pach, "zipped@master:/a.txt") == b"a" * 10_000


def test_a_message_over_the_limit_is_refused_and_the_connection_goes_on(pach, address):
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
        inspect = ch.unary_unary("/pfs_v2.API/InspectRepo")
        answer = pfs.RepoInfo().parse(inspect(bytes(pfs.InspectRepoRequest(repo=pfs.Repo.from_uri("limits")))))
        assert answer.repo.name == "limits"
    with pytest.raises(grpc.RpcError) as nothing:
        read(pach, "limits@master:/huge")
    assert nothing.value.code() == grpc.StatusCode.NOT_FOUND


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


def test_many_calls_at_once_on_one_connection_are_all_answered(pach):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("busy"))
    commit_files(pach, "busy@master", {f"/{i}": b"%d" % i for i in range(20)})
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


def test_cancelled_watches_give_their_workers_back(pach, address):
    """The in-process server has 8 workers: 20 watches left running would starve every later call."""
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("watched"))
    commit_files(pach, "watched@master", {"/a": b"a"})
    with channel(address) as ch:
        subscribe = ch.unary_stream("/pfs_v2.API/SubscribeCommit")
        request = bytes(pfs.SubscribeCommitRequest(repo=pfs.Repo.from_uri("watched"), branch="master"))
        for _ in range(20):
            watch = subscribe(request)
            assert pfs.CommitInfo().parse(next(watch)).commit.repo.name == "watched"
            watch.cancel()
            with pytest.raises(grpc.RpcError) as ended:
                next(watch)
            assert ended.value.code() == grpc.StatusCode.CANCELLED
    started = time.monotonic()
    commit_files(pach, "watched@master", {"/b": b"b"})
    assert read(pach, "watched@master:/b") == b"b"
    assert time.monotonic() - started < 30


def test_a_long_stream_arrives_whole_and_in_order_to_fast_and_slow_readers(pach, address):
    pach.pfs.create_repo(repo=pfs.Repo.from_uri("many"))
    files = [f"/d{i % 10}/{'long-name-' * 8}{i:05}" for i in range(3_000)]  # about 500 KB of FileInfo
    put_many(address, "many@master", {path: b"" for path in files})
    request = bytes(pfs.WalkFileRequest(file=pfs.File.from_uri("many@master:/")))

    with channel(address) as ch:
        fast = list(ch.unary_stream("/pfs_v2.API/WalkFile")(request))
        slow = ch.unary_stream("/pfs_v2.API/WalkFile")(request)
        first = [next(slow) for _ in range(10)]
        time.sleep(1.5)  # the server fills the client's window and its own buffer, then waits
        slow = first + list(slow)
    assert [pfs.FileInfo().parse(m).file.path for m in fast] == ["/"] + sorted([f"/d{i}/" for i in range(10)] + files)
    assert slow == fast


def test_a_client_may_send_by_our_settings_before_it_acknowledges_them(pach, address):
    """grpc's C core may send frames sized by our SETTINGS before its ACK of them: that must work."""
    import socket

    import h2.config
    import h2.connection
    import h2.events

    host, port = address.removeprefix("grpc://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while conn.max_outbound_frame_size <= 16384:  # until our SETTINGS are in
        conn.receive_data(sock.recv(65536))
    ack = conn.data_to_send()  # the client's SETTINGS ACK, held back until after the big frame
    request = bytes(pfs.CreateRepoRequest(repo=pfs.Repo.from_uri("early"), description="d" * 60_000))
    conn.send_headers(
        1,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/pfs_v2.API/CreateRepo"),
            (":authority", "x"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
    )
    conn.send_data(1, b"\0" + len(request).to_bytes(4, "big") + request, end_stream=True)  # one 60 KB frame
    sock.sendall(conn.data_to_send() + ack)
    status, ended = None, False
    while not ended:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        for ev in conn.receive_data(data):
            assert not isinstance(ev, h2.events.ConnectionTerminated), ev
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                status = dict(ev.headers).get(b"grpc-status", status)
            ended = ended or isinstance(ev, h2.events.StreamEnded)
    sock.close()
    assert status == b"0"
    assert pach.pfs.inspect_repo(repo=pfs.Repo.from_uri("early")).description == "d" * 60_000
