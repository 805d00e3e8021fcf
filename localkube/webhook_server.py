"""A small HTTPS server for admission webhooks: JSON in, JSON out, one thread per connection.

The API server keeps its webhook connections open (HTTP/1.1 keep-alive), so `close()` shuts those down
before joining their threads; TLS handshakes run on the connection's thread, not the accepting one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

Review = Callable[[str, dict[str, Any]], dict[str, Any]]
_LOG = logging.getLogger(__name__)


class WebhookServer(ThreadingHTTPServer):
    """Serves `review(path, request_document) -> response_document` on https://127.0.0.1:<port>."""

    daemon_threads = False
    block_on_close = True
    # socketserver's default backlog is 5. A ReplicaSet creating 500 pods at once makes the API server open
    # hundreds of connections together; SYNs beyond the backlog are dropped and retried a second later.
    request_queue_size = 1024

    def __init__(self, cert: Path, key: Path, review: Review, on_error: Callable[[str], None]) -> None:
        self.review = review
        self.on_error = on_error
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name="webhook-server", daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stops accepting, drops open connections, joins every thread."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):  # already closed by the peer
                    connection.shutdown(socket.SHUT_RDWR)
        self.server_close()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        # Headers and body leave in one write (see _Handler.wbufsize); no Nagle wait for a delayed ACK either.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wrapped = self._context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(wrapped)
        return wrapped, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A dropped connection or failed handshake is not worth a traceback on stderr; others are recorded.
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, ssl.SSLError, TimeoutError)):
            self.on_error(f"webhook connection from {client_address}: {error!r}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one TLS handshake per API server connection, not per pod
    timeout = 120
    # Buffered: http.server flushes once per request, so the response is one TLS record, not headers then body.
    wbufsize = 1 << 16
    server: WebhookServer

    def setup(self) -> None:
        super().setup()
        self.request.do_handshake()

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
            # The API server appends `?timeout=10s` to the configured URL.
            document = self.server.review(urlsplit(self.path).path, json.loads(self.rfile.read(length)))
            status, body = 200, json.dumps(document).encode()
        except Exception as exc:
            self.server.on_error(f"{self.path}: {exc!r}")
            _LOG.exception("webhook %s failed", self.path)
            status, body = 500, str(exc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: one line per admitted pod would flood the test output."""
