"""gRPC over HTTP/2, served with h2 on one asyncio loop: the embedded server's transport.

grpcio's server sends one message per completion-queue round trip (75-90 µs of CPU each on this
kind of machine), which capped a WalkFile of 100,000 FileInfo messages at about 11,000/s whatever
the engine did. An HTTP/2 DATA frame may carry many gRPC messages, so here a response stream
appends its messages to a buffer and the loop writes everything buffered since its last write in
one go: a fast stream costs its encoding, a slow one (a watch) still goes out message by message.

Handlers are grpcio's own method handlers (`grpc.method_handlers_generic_handler`), so the services
do not know which transport runs them; they run on a thread pool, the protocol on the loop thread,
and the two meet only in `_Call`. Of grpcio's ServicerContext the handlers use `abort`, `code`,
`invocation_metadata` and `is_active`, and `_Context` has just those.
"""

import asyncio
import base64
import binascii
import collections
import logging
import queue
import socket
import ssl
import threading
import zlib
from concurrent import futures
from typing import Optional

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hyperframe.frame

log = logging.getLogger("pachstudio.pfs_server.transport")

OUT_BUFFER = 256 << 10  # bytes a response may get ahead of the socket before its handler waits
BIG_MESSAGE = 16 << 10  # a message this big is written from its own bytes, not copied into a buffer
IN_BUFFER = 8 << 20  # bytes of a request stream held for a slow handler before the client waits
STREAM_WINDOW = 1 << 20  # what a client may send on one call before we acknowledge it
CONNECTION_WINDOW = 16 << 20
MAX_FRAME = 4 << 20  # largest DATA frame we accept: a 19 MiB upload chunk in a few frames
RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
_END, _CANCELLED = object(), object()


def _raw_data_repr(data) -> str:
    """hyperframe's own, hexlifying only the 11 bytes its text keeps. h2 4.x formats every frame it
    receives for a trace log that then drops it (`repr(frame)`, eagerly), and hyperframe hexlified
    the whole payload first: 1.1 s of CPU per 768 MiB uploaded, more than everything else."""
    if not data:
        return "None"
    r = binascii.hexlify(data[:11]).decode("ascii")
    return "<hex:" + (r[:20] + "..." if len(r) > 20 else r) + ">"


hyperframe.frame._raw_data_repr = _raw_data_repr


class _Aborted(grpc.RpcError):
    """Raised by `_Context.abort`: ends the handler with the status it set (grpcio's abort raises too)."""


class _Context:
    def __init__(self, call: "_Call"):
        self._call = call
        self._code: Optional[grpc.StatusCode] = None
        self._details = ""

    def invocation_metadata(self):
        return self._call.metadata

    def is_active(self) -> bool:
        return not self._call.cancelled.is_set()

    def code(self):
        return self._code

    def details(self):
        return self._details

    def abort(self, code: grpc.StatusCode, details: str):
        self._code, self._details = code, details
        raise _Aborted(details)


def _grpc_message(text: str) -> bytes:
    """The gRPC spec's percent-encoding of grpc-message."""
    return b"".join(bytes([b]) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in text.encode())


def _metadata(headers) -> tuple:
    """(key, value) pairs as grpcio gives them: no pseudo-headers or transport headers, `-bin` decoded."""
    out = []
    for k, v in headers:
        if k[:1] == b":" or k in (b"te", b"content-type", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding"):
            continue
        key = k.decode("ascii", "replace")
        if key.endswith("-bin"):
            out.append((key, base64.b64decode(v + b"=" * (-len(v) % 4))))
        else:
            out.append((key, v.decode("utf-8", "replace")))
    return tuple(out)


class _Call:
    """One RPC: filled by the loop (requests, cancel), drained by the loop (responses), run by a thread."""

    def __init__(self, conn: "_Connection", stream_id: int, handler, headers, encoding: Optional[bytes]):
        self.conn, self.stream_id, self.handler = conn, stream_id, handler
        self.metadata = _metadata(headers)
        self.encoding = encoding
        self.cancelled = threading.Event()
        # the request bytes not yet cut into messages (loop only): views of the received frames, so a
        # 19 MiB upload chunk is copied once, when its message is complete
        self.inparts: collections.deque = collections.deque()
        self.inlen = 0
        self.insize: Optional[int] = None  # the size of the message being received, once its header is in
        self.incompressed = 0
        self.requests: list = []  # unary requests: the messages received
        self.queue = None  # streaming requests: messages for the handler's iterator
        self.queued = 0  # bytes in `queue` (under `cond`)
        self.held = False  # the client's window is held until the handler catches up (under `cond`)
        self.unacked = 0  # flow-control bytes not yet given back to the client (loop only)
        # framed responses not yet written (under `cond`): big payloads as they are (no copy), small
        # messages gathered in one bytearray (`tail`) until a flush takes it
        self.out: collections.deque = collections.deque()
        self.out_size = 0
        self.tail: Optional[bytearray] = None
        self.cond = threading.Condition()
        self.flush_pending = False
        self.status: Optional[tuple[int, str]] = None
        self.headers_sent = False

    def take(self, n: int) -> bytes:
        """The next `n` received bytes, in one copy."""
        out = []
        self.inlen -= n
        while n:
            part = self.inparts[0]
            if len(part) <= n:
                out.append(self.inparts.popleft())
                n -= len(part)
            else:
                out.append(part[:n])
                self.inparts[0] = part[n:]
                n = 0
        return b"".join(out)

    # ---- handler thread side
    def send(self, message):
        """Queues one response: bytes, or a tuple of byte strings that make one message together
        (a GetFile chunk after its few header bytes, so the chunk is never copied to join them)."""
        pieces = message if isinstance(message, tuple) else (message,)
        size = sum(map(len, pieces))
        with self.cond:
            while self.out_size >= OUT_BUFFER and not self.cancelled.is_set():
                self.cond.wait()
            if self.cancelled.is_set():
                raise _Aborted("cancelled")
            header = b"\0" + size.to_bytes(4, "big")
            if size >= BIG_MESSAGE:
                self.out.append(header)
                self.out.extend(pieces)
                self.tail = None
            else:
                if self.tail is None:
                    self.tail = bytearray()
                    self.out.append(self.tail)
                self.tail += header
                for piece in pieces:
                    self.tail += piece
            self.out_size += 5 + size
            wake = self._flush_asked()
        if wake:
            self.conn.loop.call_soon_threadsafe(self.conn.flush, self)

    def finish(self, code: int, message: str):
        with self.cond:
            self.status = (code, message)
            wake = self._flush_asked()
        if wake:
            self.conn.loop.call_soon_threadsafe(self.conn.flush, self)

    def _flush_asked(self) -> bool:
        """(Under `cond`.) True when no flush is pending yet, so the caller must ask the loop for one:
        while one is, whatever the handler adds goes out with it."""
        if self.flush_pending:
            return False
        self.flush_pending = True
        return True

    def request_iterator(self, deserialize):
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if item is _CANCELLED:
                raise _Aborted("cancelled")
            with self.cond:
                self.queued -= len(item)
                release = self.held and self.queued <= IN_BUFFER // 2
                if release:
                    self.held = False
            if release:
                self.conn.loop.call_soon_threadsafe(self.conn.release, self)
            yield deserialize(item) if deserialize else item

    def cancel(self):
        self.cancelled.set()
        if self.queue is not None:
            self.queue.put(_CANCELLED)
        with self.cond:
            self.cond.notify_all()


def _run(call: _Call):
    """The handler, on a worker thread; its end is the call's status."""
    h, ctx = call.handler, _Context(call)
    response = None
    try:
        if h.request_streaming:
            request = call.request_iterator(h.request_deserializer)
        elif len(call.requests) != 1:
            raise ValueError(f"a unary call got {len(call.requests)} request messages")
        else:
            request = call.requests[0]
            request = h.request_deserializer(request) if h.request_deserializer else request
        serialize = h.response_serializer or (lambda m: m)
        if h.response_streaming:
            response = (h.stream_stream if h.request_streaming else h.unary_stream)(request, ctx)
            for message in response:
                call.send(serialize(message))
        else:
            call.send(serialize((h.stream_unary if h.request_streaming else h.unary_unary)(request, ctx)))
        call.finish(0, "")
    except _Aborted:
        if call.cancelled.is_set():
            return
        code = ctx.code() or grpc.StatusCode.UNKNOWN
        call.finish(code.value[0], ctx.details())
    except Exception as e:  # noqa: BLE001 - grpcio's answer to a handler that raised
        if call.cancelled.is_set():
            return
        log.exception("%s failed", call.handler)
        call.finish(grpc.StatusCode.UNKNOWN.value[0], f"Exception calling application: {e}")
    finally:
        if response is not None and hasattr(response, "close"):
            response.close()


class _Connection(asyncio.Protocol):
    def __init__(self, server: "Server"):
        self.server, self.loop = server, server.loop
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None, validate_inbound_headers=False)
        )
        self.calls: dict[int, _Call] = {}
        self.blocked: set[_Call] = set()  # calls with output waiting for the client's window
        self.paused = False
        self.transport = None
        self.peer = ""

    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=1 << 20)
        peer = transport.get_extra_info("peername")
        self.peer = f"ipv4:{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.server.connections.add(self)
        # our settings hold from the first byte, not from the client's acknowledgement: a client may
        # send by them before its ACK reaches us (grpc's C core did: h2 then refused a 20 KiB frame
        # with GOAWAY FRAME_SIZE_ERROR, and every call on the connection failed)
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 10000,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 1 << 16,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME,
            },
        )
        self.h2.max_inbound_frame_size = MAX_FRAME
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._write()

    def connection_lost(self, exc):
        self.server.connections.discard(self)
        for call in self.calls.values():
            call.cancel()
        self.calls.clear()
        self.blocked.clear()

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        for call in list(self.blocked):
            self.flush(call)

    def _write(self):
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes):
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            log.debug("HTTP/2 protocol error from %s: %s", self.peer, e)
            self._write()
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, h2.events.DataReceived):
                self._data(ev)
            elif isinstance(ev, h2.events.RequestReceived):
                self._request(ev)
            elif isinstance(ev, h2.events.StreamEnded):
                self._ended(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                call = self.calls.pop(ev.stream_id, None)
                if call is not None:
                    self.blocked.discard(call)
                    call.cancel()
            elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                for call in list(self.blocked):
                    self.flush(call)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.transport.close()
                self.connection_lost(None)  # nothing more may be sent on it
        self._write()

    def _request(self, ev):
        sid, headers = ev.stream_id, ev.headers
        path = encoding = None
        for k, v in headers:
            if k == b":path":
                path = v.decode("utf-8", "replace")
            elif k == b"grpc-encoding":
                encoding = v
        handler = self.server.handler(path)
        if handler is None:
            self._trailers_only(sid, grpc.StatusCode.UNIMPLEMENTED.value[0], "Method not found!")
            return
        call = _Call(self, sid, handler, headers, encoding if encoding != b"identity" else None)
        self.calls[sid] = call
        if handler.request_streaming:
            call.queue = queue.SimpleQueue()
            self.server.executor.submit(_run, call)

    def _data(self, ev):
        call = self.calls.get(ev.stream_id)
        if call is None:
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            return
        call.inparts.append(memoryview(ev.data))
        call.inlen += len(ev.data)
        call.unacked += ev.flow_controlled_length
        while True:
            if call.insize is None:
                if call.inlen < 5:
                    break
                head = call.take(5)
                call.incompressed, call.insize = head[0] & 1, int.from_bytes(head[1:5], "big")
                if call.insize > self.server.max_message:
                    self._refuse(
                        call,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"Received message larger than max ({call.insize} vs. {self.server.max_message})",
                    )
                    return
            if call.inlen < call.insize:
                break
            message, call.insize = call.take(call.insize), None
            if call.incompressed:
                try:
                    message = self._decompress(call.encoding, message)
                except ValueError as e:
                    code = grpc.StatusCode.UNIMPLEMENTED if call.encoding is None else grpc.StatusCode.INTERNAL
                    self._refuse(call, code, str(e))
                    return
            if call.queue is None:
                call.requests.append(message)
            else:
                with call.cond:
                    call.queued += len(message)
                call.queue.put(message)
        with call.cond:
            hold = call.held = call.queued > IN_BUFFER
        if not hold:
            self.release(call)

    @staticmethod
    def _decompress(encoding: Optional[bytes], message: bytes) -> bytes:
        if encoding in (b"gzip", b"deflate"):
            try:
                return zlib.decompress(message, 16 + zlib.MAX_WBITS if encoding == b"gzip" else zlib.MAX_WBITS)
            except zlib.error as e:
                raise ValueError(f"cannot decompress the {encoding.decode()} message: {e}") from None
        name = encoding.decode("ascii", "replace") if encoding else "(none)"
        raise ValueError(f"compressed message with unsupported grpc-encoding {name}")

    def release(self, call: _Call):
        """Gives the client back the window of what the handler has taken; of a call that has ended,
        the connection's share still (else every call that ended holding some would shrink it)."""
        if call.unacked:
            self.h2.acknowledge_received_data(call.unacked, call.stream_id)
            call.unacked = 0
            self._write()

    def _ended(self, sid: int):
        call = self.calls.get(sid)
        if call is None:
            return
        if call.inlen or call.insize is not None:
            self._refuse(call, grpc.StatusCode.INTERNAL, "the request ended inside a message")
        elif call.queue is not None:
            call.queue.put(_END)
        else:
            self.server.executor.submit(_run, call)

    def _refuse(self, call: _Call, code: grpc.StatusCode, message: str):
        """Ends a call the transport cannot go on with (its handler, if running, sees it cancelled)."""
        self.calls.pop(call.stream_id, None)
        call.cancel()
        self.release(call)
        if call.headers_sent:
            self.h2.send_headers(call.stream_id, self._status(code.value[0], message), end_stream=True)
        else:
            self._trailers_only(call.stream_id, code.value[0], message)

    @staticmethod
    def _status(code: int, message: str) -> list:
        fields = [(b"grpc-status", str(code).encode())]
        if message:
            fields.append((b"grpc-message", _grpc_message(message)))
        return fields

    def _trailers_only(self, sid: int, code: int, message: str):
        """A call's whole answer in one HEADERS frame: the status, no messages."""
        self.h2.send_headers(sid, RESPONSE_HEADERS + self._status(code, message), end_stream=True)

    def flush(self, call: _Call):
        """Writes what the call's handler produced, as far as the client's window allows."""
        if self.calls.get(call.stream_id) is not call:
            return
        try:
            self._flush(call)
        except h2.exceptions.ProtocolError as e:  # the stream or connection closed under it
            log.debug("call on stream %d ended by the client: %s", call.stream_id, e)
            self.calls.pop(call.stream_id, None)
            self.blocked.discard(call)
            call.cancel()

    def _send_data(self, sid: int, parts: list, n: int) -> None:
        """One DATA frame of `parts` (n bytes), written straight to the socket in one write (a frame
        header written alone leaves as a packet of its own, and the client wakes for it). h2's
        send_data copies a payload four times (frame body, frame, its buffer, data_to_send), which
        cost GetFile a third of its speed; the bookkeeping here is send_data's own in h2 4.x: both
        state machines, both windows."""
        self.h2.state_machine.process_input(h2.connection.ConnectionInputs.SEND_DATA)
        stream = self.h2.streams[sid]
        stream.state_machine.process_input(h2.stream.StreamInputs.SEND_DATA)
        stream.outbound_flow_control_window -= n
        self.h2.outbound_flow_control_window -= n
        self.transport.write(b"".join((n.to_bytes(3, "big"), b"\0\0", sid.to_bytes(4, "big"), *parts)))

    def _flush(self, call: _Call):
        sid = call.stream_id
        with call.cond:
            call.flush_pending = False
            if self.paused:
                self.blocked.add(call)
                return
            window = self.h2.local_flow_control_window(sid)
            pieces = []
            while call.out and window > 0:
                segment = call.out.popleft()
                if segment is call.tail:
                    call.tail = None  # the handler starts a new one
                if len(segment) > window:
                    rest = memoryview(segment)
                    segment = rest[:window]
                    call.out.appendleft(rest[window:])
                pieces.append(segment)
                window -= len(segment)
                call.out_size -= len(segment)
            if call.out_size < OUT_BUFFER:
                call.cond.notify_all()
            status = call.status if not call.out else None
            waiting = bool(call.out)
        if status is not None and not call.headers_sent and not pieces:
            self._trailers_only(sid, *status)
        else:
            if not call.headers_sent:
                self.h2.send_headers(sid, RESPONSE_HEADERS)
                call.headers_sent = True
            self._write()  # what h2 holds (these headers) goes before the data
            frame = self.h2.max_outbound_frame_size  # the client's choice: one frame a message costs it least
            batch, size = [], 0
            for piece in pieces:
                while piece:
                    if len(piece) > frame - size:
                        view = memoryview(piece)
                        piece, rest = view[: frame - size], view[frame - size :]
                    else:
                        rest = b""
                    batch.append(piece)
                    size += len(piece)
                    piece = rest
                    if size == frame:
                        self._send_data(sid, batch, size)
                        batch, size = [], 0
            if batch:
                self._send_data(sid, batch, size)
            if status is not None:
                self.h2.send_headers(sid, self._status(*status), end_stream=True)
        if status is not None:
            del self.calls[sid]
            self.blocked.discard(call)
        elif waiting:
            self.blocked.add(call)
        else:
            self.blocked.discard(call)
        self._write()


class Server:
    """grpcio's `grpc.Server` surface that `main` and the tests use: ports, start, stop(grace).wait()."""

    def __init__(self, executor: futures.ThreadPoolExecutor, handlers, max_message: int):
        self.executor, self.handlers, self.max_message = executor, list(handlers), max_message
        self.loop = asyncio.new_event_loop()
        self.connections: set[_Connection] = set()
        self._listeners: list = []
        self._thread = threading.Thread(target=self.loop.run_forever, name="pfs-transport", daemon=True)
        self._thread.start()
        self._methods: dict[str, object] = {}

    def handler(self, path: Optional[str]):
        if path is None:
            return None
        found = self._methods.get(path)
        if found is None:
            details = _CallDetails(path)
            for generic in self.handlers:
                found = generic.service(details)
                if found is not None:
                    self._methods[path] = found
                    break
        return found

    def _listen(self, host: str, port: int, tls: Optional[ssl.SSLContext]) -> int:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise OSError(f"cannot listen on {host}:{port}: {e.strerror} (is another server using the port?)") from None
        self._listeners.append((sock, tls))
        return sock.getsockname()[1]

    def add_insecure_port(self, address: str) -> int:
        return self.add_secure_port(address, None)

    def add_secure_port(self, address: str, context: Optional[ssl.SSLContext]) -> int:
        host, port = address.rsplit(":", 1)
        return self._listen(host.strip("[]"), int(port), context)

    def start(self):
        """Listens only now, as grpcio does: a client that connects finds a server ready to answer."""
        for i, (sock, tls) in enumerate(self._listeners):
            sock.listen(1024)
            sock.setblocking(False)
            serving = self.loop.create_server(lambda: _Connection(self), sock=sock, ssl=tls)
            self._listeners[i] = asyncio.run_coroutine_threadsafe(serving, self.loop).result()

    def stop(self, grace: Optional[float]) -> threading.Event:
        """Stops listening, lets running calls end for `grace` seconds, then cancels them."""
        done = threading.Event()

        async def stopping():
            for listener in self._listeners:
                (listener[0] if isinstance(listener, tuple) else listener).close()  # (socket, tls) if never started
            deadline = self.loop.time() + (grace or 0)
            while any(c.calls for c in self.connections) and self.loop.time() < deadline:
                await asyncio.sleep(0.05)
            for conn in list(self.connections):
                try:
                    conn.h2.close_connection()  # GOAWAY: the client reconnects elsewhere or fails
                    conn._write()
                except h2.exceptions.ProtocolError:
                    pass
                conn.transport.close()
                conn.connection_lost(None)

        def finished(_):
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.loop.call_soon_threadsafe(self.loop.stop)
            done.set()

        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(stopping(), self.loop).add_done_callback(finished)
        else:
            done.set()
        return done


class _CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str):
        self.method, self.invocation_metadata = method, ()


def tls_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """The server side of grpcs://: gRPC clients insist on ALPN h2."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["h2"])
    return context
