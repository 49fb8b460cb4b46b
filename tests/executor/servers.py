"""Local HTTP servers for the executor's tests: a scripted service and a forward proxy that records who came through.

Both are real sockets, on 127.0.0.1 unless given another address (the e2e binds them to the real
node's bridge, where its pods reach them): the SDKs under test send real HTTP to them, through
their own clients, with their base URLs pointed here.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted response: status, JSON body, headers, and how long to wait before sending it."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request the service received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping out a "hang" must not hold the test up


class _LocalServer:
    """A threaded HTTP server on a free port, serving while `running()`."""

    _server: _Server
    _scheme = "http"

    @property
    def url(self) -> str:
        """http://HOST:PORT (https:// when it serves TLS)"""
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def serve_tls(self, certificate: Path, key: Path) -> Self:
        """Speak HTTPS with this certificate (before `running()`), as the real services do."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https"
        return self

    @contextmanager
    def running(self) -> Iterator[Self]:
        """Serves until the block ends."""
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


class WireService(_LocalServer):
    """A service speaking whatever JSON it is scripted to: each request takes the next reply (the last one repeats)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length) if length else b""
                with service._lock:
                    service.received.append(
                        Received(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            json.loads(raw) if raw else None,
                            time.monotonic(),
                        )
                    )
                    reply = service.replies.popleft() if len(service.replies) > 1 else service.replies[0]
                time.sleep(reply.delay_s)
                payload = json.dumps(reply.body).encode() if reply.body is not None else b""
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on a hang: as intended
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server((host, 0), Handler)

    def script(self, *replies: Reply) -> None:
        """The replies to give, in order; the last repeats."""
        with self._lock:
            self.replies = deque(replies)
            self.received.clear()


class RecordingProxy(_LocalServer):
    """An HTTP forward proxy named for a location, as a real egress proxy works.

    Plain HTTP comes as absolute-form requests, which it relays; HTTPS comes as `CONNECT host:port`,
    which it answers by tunnelling bytes it cannot read. Either way it records (its name, the
    target's host:port, the path or "CONNECT"): a test reads off which location a call went through.
    """

    def __init__(self, name: str, log: list[tuple[str, str, str]], host: str = "127.0.0.1") -> None:
        self.name = name
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                target = urlsplit(self.path)
                if target.scheme != "http" or not target.hostname:
                    self.send_error(400, "only absolute http:// requests are relayed")
                    return
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length) if length else None
                log.append((proxy.name, f"{target.hostname}:{target.port}", target.path))
                upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
                path = target.path + (f"?{target.query}" if target.query else "")
                upstream.request(self.command, path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            do_POST = _relay
            do_GET = _relay

            def do_CONNECT(self) -> None:
                host, _, port = self.path.rpartition(":")
                log.append((proxy.name, self.path, "CONNECT"))
                try:
                    upstream = socket.create_connection((host, int(port)), timeout=30)
                except OSError as error:
                    self.send_error(502, f"cannot reach {self.path}: {error}")
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                _tunnel(self.connection, upstream)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server((host, 0), Handler)


def _tunnel(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    with upstream:
        sockets = [client, upstream]
        while True:
            readable, _, _ = select.select(sockets, [], [], 30)
            if not readable:
                return
            for source in readable:
                try:
                    data = source.recv(65536)
                except OSError:  # a client that refused the certificate resets the tunnel
                    return
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


def self_signed_certificate(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for `host` and its key (openssl): trusted by a client given it as its CA file."""
    certificate, key = folder / "service.crt", folder / "service.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=IP:{host}", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True,
    )  # fmt: skip
    return certificate, key


def free_port() -> int:
    """A port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
