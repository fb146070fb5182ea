"""The Label Studio app's mount-server client against a real local HTTP server: a connection that
cannot be made is tried again (a mount server restarting), a request that was sent is not."""

import http.server
import json
import socket
import threading
import time

import pytest
from django.conf import settings

if not settings.configured:  # the client reads only these two settings
    settings.configure(PACHSTUDIO_MOUNT_API="http://127.0.0.1:9", PACHSTUDIO_MOUNT_TIMEOUT=10)

from pachstudio.labelstudio import mount_client  # noqa: E402  (needs the settings above)

pytestmark = pytest.mark.fast


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Health(http.server.BaseHTTPRequestHandler):
    requests = 0

    def do_GET(self):
        type(self).requests += 1
        body = json.dumps({"status": "running"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        type(self).requests += 1
        self.close_connection = True  # the request arrived; the answer never does

    def log_message(self, *args):
        pass


@pytest.fixture
def late_server(monkeypatch):
    """A mount server that starts listening 0.3 s after the first call (a restart)."""
    port = free_port()
    monkeypatch.setattr(settings, "PACHSTUDIO_MOUNT_API", f"http://127.0.0.1:{port}")
    Health.requests = 0
    servers = []

    def start():
        time.sleep(0.3)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Health)
        servers.append(server)
        server.serve_forever()

    threading.Thread(target=start, daemon=True).start()
    yield
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_mount_server_that_is_restarting_is_reached(late_server):
    assert mount_client.health() == {"status": "running"}
    assert Health.requests == 1


def test_without_retries_the_same_call_fails(late_server, monkeypatch):
    monkeypatch.setattr(mount_client, "CONNECT_RETRIES", 0)
    with pytest.raises(mount_client.MountServerError, match="mount server unreachable") as err:
        mount_client.health()
    assert err.value.status == 503


def test_a_request_that_was_sent_is_not_repeated(late_server):
    time.sleep(0.5)  # listening now
    with pytest.raises(mount_client.MountServerError, match="mount server unreachable"):
        mount_client.commit("m", "one commit")
    assert Health.requests == 1
