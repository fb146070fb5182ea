"""Why a connection to the cluster fails at the TLS level, in words a person can act on.

gRPC reports a refused certificate as one long line of BoringSSL codes inside "failed to connect to
all addresses". When a call fails that way, one TLS handshake of our own (Python's ssl, the same CAs,
the same host name) says what is wrong: "certificate verify failed: unable to get local issuer
certificate", a host name the certificate does not list, a server that speaks no TLS, or a TLS
server addressed as `grpc://`.
"""

import socket
import ssl
from typing import Optional
from urllib.parse import urlparse

TIMEOUT = 3.0


def _default_cas() -> Optional[bytes]:
    """The CAs the SDK trusts for `grpcs://` without server_cas: certifi's bundle."""
    try:
        import certifi

        with open(certifi.where(), "rb") as f:
            return f.read()
    except (ImportError, OSError):
        return None


def _handshake(host: str, port: int, context: ssl.SSLContext) -> None:
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=host):
            pass


def diagnose(address: str, server_cas: Optional[bytes], where: str = "") -> Optional[str]:
    """The TLS problem between us and `address` (scheme://host:port), or None when there is none
    to report (TLS works, or the host cannot even be reached over TCP). `where` names the config
    that holds server_cas, for the advice."""
    u = urlparse(address)
    host, port = u.hostname, u.port
    if not host or not port:
        return None
    tls = u.scheme in ("grpcs", "https") or server_cas is not None
    try:
        socket.create_connection((host, port), timeout=TIMEOUT).close()
    except OSError:
        return None  # not a TLS problem: gRPC's own words say it
    if not tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        try:
            _handshake(host, port, context)
        except (OSError, ssl.SSLError):
            return None
        return (
            f"the server at {host}:{port} speaks TLS: use grpcs://{host}:{port} as the address, with the CA "
            "that signed its certificate in the context's server_cas"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_alpn_protocols(["h2"])
    cas = server_cas if server_cas is not None else _default_cas()
    try:
        if cas:
            context.load_verify_locations(cadata=cas.decode("ascii", errors="replace"))
        else:
            context.load_default_certs()
    except ssl.SSLError as e:
        return f"the CA certificates in server_cas{f' ({where})' if where else ''} cannot be loaded: {e.reason or e}"
    try:
        _handshake(host, port, context)
    except ssl.SSLCertVerificationError as e:
        problem = f"certificate verify failed: {e.verify_message or e.reason}"
        if "hostname mismatch" in (e.verify_message or "").lower():
            return f"{problem} (the address must use a name or IP address the server's certificate lists)"
        if server_cas is None:
            return (
                f"{problem} (no server_cas is configured, so only public CAs are trusted: put the base64 of "
                "the PEM of the CA that signed the cluster's certificate in the context's server_cas)"
            )
        return (
            f"{problem} (server_cas{f' in {where}' if where else ''} does not hold the CA that signed "
            "the cluster's certificate)"
        )
    except ssl.SSLError as e:
        reason = e.reason or str(e)
        if reason.upper() in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNEXPECTED_EOF_WHILE_READING"):
            return (
                f"the server at {host}:{port} does not answer TLS ({reason}): use grpc://{host}:{port} if it "
                "serves plaintext, or check that it serves TLS"
            )
        return f"TLS handshake failed: {reason}"
    except OSError:
        return None
    return None
