"""Builds grpcio handlers from pachyderm-sdk's generated client stubs.

The SDK ships messages and client stubs but no server classes; its stubs name every method with its
request and response classes, so the server schema is read from the stub objects (built over a
recording channel) rather than written again.
Requests are parsed here so a malformed one gets INVALID_ARGUMENT instead of grpcio's INTERNAL.
`ts` is the time conversion every service's messages share.
"""

import importlib
import logging
import typing
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Optional

import grpc

from ..pfswire import check
from .errors import PfsError

log = logging.getLogger("pachstudio.pfs_server")

KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def ts(t: Optional[float]) -> Optional[datetime]:
    """An engine's time (epoch seconds, None or 0 when unset) as the SDK's messages carry it."""
    return datetime.fromtimestamp(t, timezone.utc) if t else None


@dataclass
class Method:
    kind: str
    service: str
    name: str
    request: type
    response: type
    parse: Optional[Callable] = None  # a faster parser than betterproto's, for hot calls


class _Recorder:
    """What a fake channel hands a stub for one method: records the call's shape, and the class of
    the request the stub builds when its method is called."""

    def __init__(self, kind: str, path: str, response_deserializer):
        self.kind, self.path = kind, path
        self.response = response_deserializer.__self__  # betterproto's FromString is a classmethod
        self.request: Optional[type] = None

    def __call__(self, request, *args, **kwargs):
        if self.kind.startswith("unary_"):
            self.request = type(request)
        return iter(()) if self.kind.endswith("_stream") else None


class _RecordingChannel:
    """Stands in for a grpc.Channel while a generated stub is built: each of its
    unary_unary/unary_stream/stream_unary/stream_stream calls is recorded."""

    def __init__(self):
        self.recorders: list[_Recorder] = []

    def __getattr__(self, kind: str):
        if kind not in KINDS:
            raise AttributeError(kind)

        def make(path, request_serializer=None, response_deserializer=None, **_):
            rec = _Recorder(kind, path, response_deserializer)
            self.recorders.append(rec)
            return rec

        return make


def _stream_request_class(stub_cls, snake: str, module) -> type:
    """A client-streaming stub method takes an iterator: its request class is in the annotation
    (`Union[AsyncIterable["X"], Iterable["X"]]`)."""
    hints = typing.get_type_hints(getattr(stub_cls, snake), vars(module))
    hint = next(v for k, v in hints.items() if k != "return")
    while typing.get_args(hint):
        hint = typing.get_args(hint)[0]
    return hint


def sdk_methods(module_name: str) -> dict[str, Method]:
    """{method name: Method} of every client stub class in a pachyderm-sdk API module, read from the
    stub objects themselves: each stub is built over a recording channel, then each of its methods
    is called once so the request class it builds is seen."""
    module = importlib.import_module(module_name)
    methods = {}
    for stub_cls in [
        v
        for k, v in vars(module).items()
        if k.endswith("Stub") and isinstance(v, type) and v.__module__ == module.__name__
    ]:
        channel = _RecordingChannel()
        stub = stub_cls(channel)
        prefix = f"_{stub_cls.__name__}__rpc_"
        for attr, rec in vars(stub).items():
            if not (attr.startswith(prefix) and isinstance(rec, _Recorder)):
                continue
            snake = attr[len(prefix) :]
            if rec.kind.startswith("unary_"):
                result = getattr(stub, snake)()
                if rec.kind.endswith("_stream"):
                    list(result)
                request = rec.request
            else:
                request = _stream_request_class(stub_cls, snake, module)
            service, name = rec.path.strip("/").split("/")
            methods[name] = Method(rec.kind, service, name, request, rec.response)
    return methods


def _status(err: PfsError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.code)


def _parse(method: Method, raw: bytes, context):
    try:
        if method.parse is not None:
            return method.parse(raw)
        check(raw)
        return method.request().parse(raw)
    except Exception as e:  # noqa: BLE001 - any parse failure is the client's malformed request
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {method.name} request: {type(e).__name__}: {e}")


def _serialize(msg) -> bytes:
    return msg if isinstance(msg, (bytes, bytearray)) else bytes(msg)


def _guard(method: Method, fn, context, *args):
    try:
        return fn(*args, context)
    except PfsError as e:
        context.abort(_status(e), str(e))
    except grpc.RpcError:
        raise
    except Exception as e:  # noqa: BLE001 - a bug must not take the server down
        if context.code() is not None:  # already aborted on purpose
            raise
        log.exception("%s failed", method.name)
        context.abort(grpc.StatusCode.INTERNAL, f"{method.name}: {type(e).__name__}: {e}")


def _guard_stream(method: Method, gen_fn, context, *args):
    try:
        yield from gen_fn(*args, context)
    except PfsError as e:
        context.abort(_status(e), str(e))
    except grpc.RpcError:
        raise
    except Exception as e:  # noqa: BLE001
        if context.code() is not None:
            raise
        log.exception("%s failed", method.name)
        context.abort(grpc.StatusCode.INTERNAL, f"{method.name}: {type(e).__name__}: {e}")


def handler_for(method: Method, fn):
    """Wraps `fn(request_or_iterator, context)` as a grpcio method handler of the right kind."""

    def requests(it, context):
        for raw in it:
            yield _parse(method, raw, context)

    if method.kind == "unary_unary":
        h = lambda raw, ctx: _guard(method, fn, ctx, _parse(method, raw, ctx))  # noqa: E731
        return grpc.unary_unary_rpc_method_handler(h, response_serializer=_serialize)
    if method.kind == "unary_stream":
        h = lambda raw, ctx: _guard_stream(method, fn, ctx, _parse(method, raw, ctx))  # noqa: E731
        return grpc.unary_stream_rpc_method_handler(h, response_serializer=_serialize)
    if method.kind == "stream_unary":
        h = lambda it, ctx: _guard(method, fn, ctx, requests(it, ctx))  # noqa: E731
        return grpc.stream_unary_rpc_method_handler(h, response_serializer=_serialize)
    h = lambda it, ctx: _guard_stream(method, fn, ctx, requests(it, ctx))  # noqa: E731
    return grpc.stream_stream_rpc_method_handler(h, response_serializer=_serialize)


def generic_handlers(implementations: dict[str, dict[str, tuple]]):
    """{service: {method name: (Method, fn)}} -> grpcio generic handlers."""
    return [
        grpc.method_handlers_generic_handler(service, {name: handler_for(m, fn) for name, (m, fn) in methods.items()})
        for service, methods in implementations.items()
    ]
