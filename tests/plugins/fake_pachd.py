"""A stand-in for a pachd with auth on, which the embedded server cannot be (it has no auth).

A fake for the one failure no real part here produces: a cluster that refuses the token. It
answers InspectCluster (pachd does, without a token) and refuses every other call as pachd refuses
a wrong token. Run it as `python -c REFUSING_PACHD [host:port]` (on the host, or in the appliance
image, which has grpcio but not this file).
"""
# Pachyderm's own words for a token it does not accept (pachd's auth.ErrBadToken).
REFUSAL = "provided auth token is corrupted or has expired (try logging in again)"

REFUSING_PACHD = f"""
import sys
from concurrent import futures
import grpc

def refuse(requests, context):
    context.abort(grpc.StatusCode.UNAUTHENTICATED, {REFUSAL!r})

class Handler(grpc.GenericRpcHandler):
    def service(self, details):
        if details.method == "/admin_v2.API/InspectCluster":
            return grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
        return grpc.stream_stream_rpc_method_handler(refuse)

server = grpc.server(futures.ThreadPoolExecutor(8))
server.add_generic_rpc_handlers((Handler(),))
server.add_insecure_port(sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0:30650")
server.start()
print("fake pachd: refusing every token", flush=True)
server.wait_for_termination()
"""
