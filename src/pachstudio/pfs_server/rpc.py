"""Builds grpcio handlers from pachyderm-sdk's generated client stubs.

The SDK ships messages and client stubs but no server classes; its stubs name every method with its
request and response classes, so the server schema is read from them rather than written again.
Requests are parsed here so a malformed one gets INVALID_ARGUMENT instead of grpcio's INTERNAL.
"""
import importlib
import inspect
import logging
import re
from dataclasses import dataclass
from typing import Callable, Optional

import grpc

from .errors import PfsError
from ..pfswire import check

log = logging.getLogger("pachstudio.pfs_server")

STUB_RE = re.compile(
    r'channel\.(unary_unary|unary_stream|stream_unary|stream_stream)\(\s*"/([\w.]+)/(\w+)",\s*'
    r'request_serializer=([\w.]+)\.SerializeToString,\s*response_deserializer=([\w.]+)\.FromString')


@dataclass
class Method:
    kind: str
    service: str
    name: str
    request: type
    response: type
    parse: Optional[Callable] = None  # a faster parser than betterproto's, for hot calls


def sdk_methods(module_name: str) -> dict[str, Method]:
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    methods = {}
    for kind, service, name, req, resp in STUB_RE.findall(source):
        methods[name] = Method(kind, service, name, _resolve(module, req), _resolve(module, resp))
    return methods


def _resolve(module, dotted: str):
    obj = module
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _status(err: PfsError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.code)


def _parse(method: Method, raw: bytes, context):
    try:
        if method.parse is not None:
            return method.parse(raw)
        check(raw)
        return method.request().parse(raw)
    except Exception as e:  # noqa: BLE001 - any parse failure is the client's malformed request
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"malformed {method.name} request: {type(e).__name__}: {e}")


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
    return [grpc.method_handlers_generic_handler(
                service, {name: handler_for(m, fn) for name, (m, fn) in methods.items()})
            for service, methods in implementations.items()]
