"""Serving an emulator on 127.0.0.1 in a daemon thread, its TLS certificate, and stopping it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_CERT: tuple[Path, Path] | None = None
_CERT_LOCK = threading.Lock()


def certificate() -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (cert, key), made once per process.

    simple-salesforce speaks HTTPS only; clients trust it through `verify=<cert>`.
    """
    global _CERT
    with _CERT_LOCK:
        if _CERT is None:
            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import NameOID

            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(
                    x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
                )
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                .sign(key, hashes.SHA256())
            )
            directory = Path(tempfile.mkdtemp(prefix="callmatch-loopback-"))
            (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            (directory / "key.pem").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            _CERT = (directory / "cert.pem", directory / "key.pem")
        return _CERT


def serve(
    handler: type[BaseHTTPRequestHandler], name: str, *, port: int = 0, tls: ssl.SSLContext | None = None
) -> ThreadingHTTPServer:
    """A threaded server on loopback (`port` 0: a free one), already answering."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    ).start()
    return server


def shut(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()
