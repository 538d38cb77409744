"""Serving an emulator on 127.0.0.1 in a daemon thread, and stopping it."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
