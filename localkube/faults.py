"""A fault-injecting HTTPS proxy between a Kubernetes client and the real API server.

Scripted faults (`proxy.add(Fault(...))`) hit the first N matching requests; the rest pass through, watches
streamed event by event. Every request is logged, so tests can count what reached the server, and how many were
in flight at once (`max_in_flight`).

A fault may also act on the server before the request reaches it (`before`: delete the object a PATCH addresses,
roll a Deployment on between two lists...) and hold it (`delay`: server latency); kind `pass` does only that.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import http.client
import json
import re
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

import yaml

from localkube.certs import serving_certificate

Kind = Literal["pass", "status", "body", "drop_before", "drop_after", "cut_watch", "watch_error", "gone_continue"]
Query = Mapping[str, list[str]]

# What kube-apiserver answers for an expired continue token (k8s.io/apiserver storage errors).
EXPIRED_CONTINUE_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show up in the list."
)
# Per-hop headers: each side of the proxy has its own connection and framing.
_HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "host"})


def is_watch(query: Query) -> bool:
    # The python client sends `watch=True`; the API server parses it with Go's ParseBool.
    return query.get("watch", [""])[0].lower() in ("true", "1")


@functools.cache
def _certificate() -> tuple[Path, Path, Path]:
    """(CA, certificate, key), made once per test process: openssl takes about a second for each RSA pair."""
    directory = Path(tempfile.mkdtemp(prefix="aks-istio-proxy-"))
    atexit.register(shutil.rmtree, directory, True)
    return serving_certificate(directory, "fault-proxy")


@dataclass
class Fault:
    """Hits the first `times` matching requests (None: all); `path` is a regex searched in the URL path.

    Kinds: `pass` forwards the request (after `before` and `delay`); `status` answers a Kubernetes Status error
    `code` itself; `body` answers 200 with `body`; `drop_before` closes the connection without forwarding,
    `drop_after` once the server answered; `cut_watch` breaks a watch's stream after `cut_watch_after` events;
    `watch_error` sends, after `cut_watch_after` events, an ERROR event with a Status of `code` (410: "too old
    resource version", as the API server does when its watch cache has moved on) and ends the stream;
    `gone_continue` answers 410 to a list carrying a continue token. `cut_watch` and `watch_error` match only
    watch requests, `gone_continue` only GETs with a continue token.
    """

    kind: Kind
    method: str = "*"
    path: str = ""
    query: Callable[[Query], bool] | None = None  # an extra test of the parsed query string
    times: int | None = 1
    code: int = 503  # of a "status" fault
    retry_after: int | datetime | None = None  # seconds, or an aware datetime sent as an HTTP date
    headers: Mapping[str, str] = field(default_factory=dict)
    message: str = ""
    cut_watch_after: int = 1  # events passed through before the cut or the ERROR event
    body: bytes = b""  # of a "body" fault
    before: Callable[[], None] | None = None  # run in the request's thread before anything else, e.g. a race
    delay: float = 0.0  # seconds the request is held (after `before`): server latency
    fired: int = field(default=0, init=False)

    def matches(self, method: str, path: str, query: Query) -> bool:
        return (
            (self.times is None or self.fired < self.times)
            and self.method.upper() in ("*", method)
            and re.search(self.path, path) is not None
            and (self.kind not in ("cut_watch", "watch_error") or is_watch(query))
            and (self.kind != "gone_continue" or (method == "GET" and bool(query.get("continue", [""])[0])))
            and (self.query is None or self.query(query))
        )


@dataclass(frozen=True)
class Seen:
    """One request as the proxy handled it; `status` is what the client got, None when it got no answer."""

    method: str
    path: str
    query: Query
    status: int | None
    fault: Kind | None
    reached_server: bool
    upstream_status: int | None = None
    accept: str = ""
    """The request's Accept header: what representation the client asked for (a metadata-only list, say)."""


class FaultProxy(ThreadingHTTPServer):
    """Context manager: https://127.0.0.1:<free port> in front of `upstream`, whose certificate `upstream_ca` signs."""

    def __init__(self, upstream: str, upstream_ca: Path) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 443)
        self.upstream_context = ssl.create_default_context(cafile=str(upstream_ca))
        self.faults: list[Fault] = []
        self.errors: list[str] = []  # unexpected failures inside the proxy: tests should expect none
        self._log: list[Seen] = []
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closing = False
        self._connections: list[threading.Thread] = []  # touched by the accepting thread, then by close()
        self.ca_file, cert, key = _certificate()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"https://127.0.0.1:{self.server_address[1]}"
        serve = functools.partial(self.serve_forever, poll_interval=0.05)  # shutdown() waits for one poll
        self._thread = threading.Thread(target=serve, name="fault-proxy", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops accepting, cuts every open connection (client and upstream side), joins all threads."""
        with self._lock:
            self._closing = True
        if self._thread.is_alive():
            self.shutdown()  # not under the lock: accepting takes it
            self._thread.join()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._connections:
            thread.join()
        self.server_close()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._log)

    def count(self, method: str = "*", path: str = "", *, reached_server: bool | None = None) -> int:
        """Logged requests with `method`, a path matching the regex `path` and, if given, `reached_server`."""
        return sum(
            method.upper() in ("*", seen.method)
            and re.search(path, seen.path) is not None
            and reached_server in (None, seen.reached_server)
            for seen in self.requests
        )

    def max_in_flight(self, method: str) -> int:
        """The most requests with `method` the proxy held at once, from reading one until it was answered."""
        with self._lock:
            return self._max_in_flight[method.upper()]

    def _enter(self, method: str) -> None:
        with self._lock:
            self._in_flight[method] += 1
            self._max_in_flight[method] = max(self._max_in_flight[method], self._in_flight[method])

    def _leave(self, method: str) -> None:
        with self._lock:
            self._in_flight[method] -= 1

    def kubeconfig(self, base: str) -> str:
        """The kubeconfig YAML `base` with every cluster pointed at the proxy, trusting the proxy's CA only."""
        document = yaml.safe_load(base)
        ca_data = base64.b64encode(self.ca_file.read_bytes()).decode()
        for entry in document.get("clusters") or []:
            entry["cluster"].pop("certificate-authority", None)
            entry["cluster"].pop("insecure-skip-tls-verify", None)
            entry["cluster"].update({"server": self.url, "certificate-authority-data": ca_data})
        return yaml.safe_dump(document, sort_keys=False)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        # Headers and body go out in separate writes: with Nagle on, the client's delayed ACK adds ~40 ms to each.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The handshake runs on the connection's thread: one slow client does not stall accepting.
        wrapped = self.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        self._track(wrapped)
        return wrapped, address

    def process_request(self, request: Any, client_address: Any) -> None:
        # Daemon threads, so that a proxy left open cannot hang the interpreter's exit; close() joins them.
        self._connections = [thread for thread in self._connections if thread.is_alive()]
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), name="fault-proxy-conn", daemon=True
        )
        self._connections.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        self._track(request, keep=False)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Cut and dropped connections are what this proxy is for: only other errors are worth reporting.
        error = sys.exc_info()[1]
        if not isinstance(error, OSError | http.client.HTTPException):
            self.errors.append(f"{client_address}: {error!r}")

    def _take(self, method: str, path: str, query: Query) -> Fault | None:
        """The first fault this request triggers, its budget spent; None to pass it through."""
        with self._lock:
            fault = next((fault for fault in self.faults if fault.matches(method, path, query)), None)
            if fault is not None:
                fault.fired += 1
            return fault

    def _track(self, sock: socket.socket, keep: bool = True) -> None:
        """Registers (or forgets) a connection for `close()` to cut; refuses new ones once closing."""
        with self._lock:
            if not keep:
                self._sockets.discard(sock)
            elif self._closing:
                sock.close()
                raise ConnectionAbortedError("fault proxy is closing")
            else:
                self._sockets.add(sock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's urllib3 pool expects
    timeout = None  # watches and idle pooled connections may wait long; close() cuts them
    server: FaultProxy

    def setup(self) -> None:
        super().setup()
        self.request.do_handshake()

    def do_any(self) -> None:
        self.server._enter(self.command)
        try:
            self._handle()
        finally:
            self.server._leave(self.command)

    def _handle(self) -> None:
        proxy, url = self.server, urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = proxy._take(self.command, url.path, query)
        kind = fault.kind if fault is not None else None
        if fault is not None and fault.before is not None:
            try:
                fault.before()
            except Exception as exc:  # the test's own action failed: say so, then carry on as scripted
                proxy.errors.append(f"{self.command} {url.path}: the fault's action failed: {exc!r}")
        if fault is not None and fault.delay:
            time.sleep(fault.delay)

        def record(status: int | None, reached: bool, upstream_status: int | None = None) -> None:
            with proxy._lock:  # before answering: a client that got its answer finds its request logged
                proxy._log.append(
                    Seen(
                        self.command,
                        url.path,
                        query,
                        status,
                        kind,
                        reached,
                        upstream_status,
                        self.headers.get("Accept", ""),
                    )
                )

        if kind == "drop_before":
            record(None, reached=False)
            self.close_connection = True
            return
        if fault is not None and kind in ("status", "gone_continue"):
            code = 410 if kind == "gone_continue" else fault.code
            record(code, reached=False)
            self._answer_fault(fault, code)
            return
        if fault is not None and kind == "body":
            record(200, reached=False)
            self._send(200, fault.body)
            return
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_HEADERS}
        upstream = http.client.HTTPSConnection(*proxy.upstream, context=proxy.upstream_context, timeout=10)
        try:
            try:
                upstream.connect()
                assert upstream.sock is not None
                upstream.sock.settimeout(None)  # a watch may be quiet for long; close() cuts it
                proxy._track(upstream.sock)
                upstream.request(self.command, self.path, body or None, headers)
                response = upstream.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                record(502, reached=False)
                self._answer(502, "InternalError", f"fault proxy: upstream failed: {exc!r}")
                return
            if kind == "drop_after":
                response.read()
                record(None, reached=True, upstream_status=response.status)
                self.close_connection = True
                return
            record(response.status, reached=True, upstream_status=response.status)
            stop = fault.cut_watch_after if fault and kind in ("cut_watch", "watch_error") else None
            error = _error_event(fault.code) if fault and kind == "watch_error" and response.status == 200 else None
            self._relay(response, is_watch(query), stop, error)
        finally:
            if upstream.sock is not None:
                proxy._track(upstream.sock, keep=False)
            upstream.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_any  # noqa: N815 - http.server's names

    def _relay(
        self, response: http.client.HTTPResponse, watch: bool, stop: int | None, error: bytes | None = None
    ) -> None:
        """Streams the response back as it arrives: chunk by chunk, a watch line (one event) by line.

        After `stop` events the stream ends: with the `error` event and a proper end if given, else cut short.
        """
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_HEADERS:
                self.send_header(name, value)
        if response.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif response.length is None:
            self.close_connection = True  # the body ends when the connection does
        self.end_headers()
        events = 0
        while stop is None or events < stop:
            data = response.readline() if watch else response.read1(65536)
            if not data:
                break
            self._write(data, response.chunked)
            events += 1
        else:
            if error is None:
                self.close_connection = True  # no terminating chunk: the client sees the stream break
                return
            self._write(error, response.chunked)
            self.close_connection = not response.chunked
        if response.chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _write(self, data: bytes, chunked: bool) -> None:
        self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)

    def _answer_fault(self, fault: Fault, code: int) -> None:
        headers, details = dict(fault.headers), {}
        if isinstance(fault.retry_after, datetime):
            headers["Retry-After"] = format_datetime(fault.retry_after.astimezone(UTC), usegmt=True)
        elif fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
            details = {"retryAfterSeconds": fault.retry_after}  # as the API server's own 429s carry it
        default = EXPIRED_CONTINUE_MESSAGE if fault.kind == "gone_continue" else f"fault proxy: injected {code}"
        reason = {410: "Expired", 429: "TooManyRequests", 503: "ServiceUnavailable"}.get(code, "InternalError")
        self._answer(code, reason, fault.message or default, headers, details)

    def _answer(self, code: int, reason: str, message: str, headers: Any = None, details: Any = None) -> None:
        """A Kubernetes `Status` error, as the API server writes one."""
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
        body = json.dumps({**status, "reason": reason, **({"details": details} if details else {}), "code": code})
        self._send(code, body.encode(), headers)

    def _send(self, code: int, body: bytes, headers: Any = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request log (`FaultProxy.requests`) says what happened."""


def _error_event(code: int) -> bytes:
    """A watch's ERROR event, as the API server sends one before it ends the stream."""
    if code == 410:
        reason, message = "Expired", "too old resource version: 1 (2)"
    else:
        reason, message = "InternalError", f"fault proxy: injected {code} in the watch"
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
              "reason": reason, "code": code}  # fmt: skip
    return json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
